//! Reading funko folders: funko.yml → `Spec`, with errors that point at the line and field.

use std::path::{Path, PathBuf};

use crate::problem::Problem;
use crate::scale::idle_needs_autoscale;
use crate::spec::Spec;

/// The file every funko folder holds.
pub const SPEC_FILE: &str = "funko.yml";

/// The largest funko.yml we read; a spec is a few lines, so anything bigger is a mistake.
const MAX_SPEC_BYTES: u64 = 256 * 1024;

/// A funko folder whose funko.yml parsed and passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Funko {
    /// The funko's folder.
    pub dir: PathBuf,
    /// Its parsed funko.yml.
    pub spec: Spec,
    /// The funko.yml text, to point at a field in later errors.
    pub text: String,
}

impl Funko {
    /// A problem with the field `key` (top-level, or dotted one level deep such as
    /// `options.executable`) of this funko's funko.yml, located at its value.
    /// Why a fixed scale (`faaso scale`, `up`, `down`, the admin API's scale) is refused, when
    /// it is: an autoscaled funko's count follows load, and writing one would drop its bounds.
    /// The one place this rule and its message live.
    pub fn refuses_fixed_scale(&self) -> Option<Problem> {
        let auto = self.spec.scale.auto()?;
        Some(self.field_problem(
            "scale",
            format!(
                "the funko is autoscaled between {} and {} instances, so its count follows load; \
                 change `min` or `max` under `scale:`, or replace the block with a fixed count \
                 such as `scale: 2` (and remove `idle:`)",
                auto.min, auto.max
            ),
        ))
    }

    /// A problem with the field `key` of this funko's funko.yml, at its line.
    pub fn field_problem(&self, key: &str, message: impl Into<String>) -> Problem {
        let (line, column) = locate_field(&self.text, key);
        Problem {
            file: self.dir.join(SPEC_FILE),
            line,
            column,
            field: Some(key.to_owned()),
            message: message.into(),
        }
    }
}

/// Reads and validates the funko in `dir`.
pub fn load_funko(dir: &Path) -> Result<Funko, Problem> {
    let file = dir.join(SPEC_FILE);
    if !dir.is_dir() {
        return Err(Problem::whole(
            dir,
            "is not a folder; a funko is a folder holding funko.yml",
        ));
    }
    let size = std::fs::metadata(&file)
        .map_err(|_| {
            Problem::whole(
                dir,
                format!("has no {SPEC_FILE}; create one (for example with `faaso new`)"),
            )
        })?
        .len();
    if size > MAX_SPEC_BYTES {
        return Err(Problem::whole(
            &file,
            format!("is {size} bytes; a funko.yml may be at most {MAX_SPEC_BYTES}"),
        ));
    }
    if !file.is_file() {
        return Err(Problem::whole(&file, "is not a file"));
    }
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Problem::whole(&file, format!("cannot be read: {e}")))?;
    let spec = parse_spec(&text).map_err(|mut p| {
        p.file = file.clone();
        p
    })?;
    check_folder_name(dir, &file, &text, &spec)?;
    Ok(Funko {
        dir: dir.to_owned(),
        spec,
        text,
    })
}

/// Reads every funko under `root` (its immediate subfolders, hidden ones skipped), returning the
/// valid funkos and a problem for each invalid one, sorted by folder name.
pub fn load_funkos_dir(root: &Path) -> Result<(Vec<Funko>, Vec<Problem>), Problem> {
    let entries = std::fs::read_dir(root)
        .map_err(|e| Problem::whole(root, format!("cannot be read as a funkos folder: {e}")))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let mut funkos = Vec::new();
    let mut problems = Vec::new();
    for dir in dirs {
        match load_funko(&dir) {
            Ok(funko) => funkos.push(funko),
            Err(problem) => problems.push(problem),
        }
    }
    Ok((funkos, problems))
}

/// Parses funko.yml text. The returned problem has an empty file name; callers set it.
pub fn parse_spec(text: &str) -> Result<Spec, Problem> {
    let options = serde_saphyr::options! { with_snippet: false };
    let spec: Spec =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| yaml_problem(text, &e))?;
    check_idle(text, &spec)?;
    Ok(spec)
}

/// `idle:` means something only with autoscaling. `Spec` cannot tell a written block from the
/// defaults, so the text is read once more for whether the key is there.
fn check_idle(text: &str, spec: &Spec) -> Result<(), Problem> {
    #[derive(serde::Deserialize)]
    struct Written {
        idle: Option<serde::de::IgnoredAny>,
    }
    let Some(message) = idle_needs_autoscale(&spec.scale) else {
        return Ok(());
    };
    let options = serde_saphyr::options! { with_snippet: false };
    let written: Written =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| yaml_problem(text, &e))?;
    if written.idle.is_none() {
        return Ok(());
    }
    let (line, column) = locate_key(text, "idle");
    Err(Problem {
        file: PathBuf::new(),
        line,
        column,
        field: Some("idle".to_owned()),
        message,
    })
}

fn yaml_problem(text: &str, error: &serde_saphyr::Error) -> Problem {
    let location = error.location();
    let mut line = location.map(|l| l.line());
    let mut column = location.map(|l| l.column());
    if let Some(l) = location {
        // An error about a whole block (a rule across its fields, a field it lacks, a block
        // where a value belongs) is placed on the block's first key; it belongs to the key that
        // opens the block.
        let about_block = l.span().is_empty()
            || matches!(
                error.without_snippet(),
                serde_saphyr::Error::SerdeMissingField { .. }
            );
        if let Some((opener, at)) = about_block
            .then(|| block_opener(text, l.line(), l.column()))
            .flatten()
        {
            (line, column) = (Some(opener), Some(at));
        }
    }
    let raw = error.without_snippet().to_string();
    let message = strip_position_prefix(&raw);
    Problem {
        file: PathBuf::new(),
        line,
        column,
        field: line.and_then(|line| field_at(text, line, column)),
        message: explain(message),
    }
}

/// When `line`:`column` is where a block-style key starts, the line and column of the key whose
/// block holds it.
fn block_opener(text: &str, line: u64, column: u64) -> Option<(u64, u64)> {
    let lines: Vec<&str> = text.lines().collect();
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let indent_of = |raw: &str| raw.len() - raw.trim_start().len();
    let is_key = |raw: &str| {
        let trimmed = raw.trim_start();
        !trimmed.starts_with(['#', '-', '{', '[']) && trimmed.contains(':')
    };
    let here = lines.get(index)?;
    let indent = indent_of(here);
    if !is_key(here) || indent == 0 || column != indent as u64 + 1 {
        return None;
    }
    lines[..index]
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, raw)| !raw.trim().is_empty() && !raw.trim_start().starts_with('#'))
        .find(|(_, raw)| indent_of(raw) < indent)
        .filter(|(_, raw)| is_key(raw))
        .map(|(i, raw)| (i as u64 + 1, indent_of(raw) as u64 + 1))
}

/// serde-saphyr puts `error: line N column M: ` in front and sometimes ` at line N, column M`
/// behind; we print the position ourselves, once.
fn strip_position_prefix(message: &str) -> &str {
    let message = message.strip_prefix("error: ").unwrap_or(message);
    let message = match message.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map_or(message, |(_, m)| m),
        None => message,
    };
    match message.rsplit_once(" at line ") {
        Some((head, tail)) if tail.contains(", column ") => head,
        _ => message,
    }
}

/// Says serde's and the parser's messages in funko.yml's terms, and adds a "did you mean" to an
/// unknown-field message, choosing among the fields it lists.
fn explain(message: &str) -> String {
    let integer = message
        .strip_prefix("invalid ")
        .is_some_and(|kind| kind.starts_with(['u', 'i']));
    if integer {
        return "expected a whole number (0 or more)".to_owned();
    }
    if message.starts_with("cannot deserialize null") {
        return "a value is required here".to_owned();
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest);
        return format!("`{key}` appears twice; keep one");
    }
    if message.starts_with("unexpected end of input") {
        return "the file is empty; a funko.yml needs at least `name:`".to_owned();
    }
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let known: Vec<&str> = expected
        .split_once("expected one of ")
        .or_else(|| expected.split_once("expected "))
        .map(|(_, list)| {
            list.split(", ")
                .map(|f| f.trim_matches('`').trim())
                .collect()
        })
        .unwrap_or_default();
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!(
            "unknown field `{unknown}`; did you mean `{k}`? (known fields: {})",
            known.join(", ")
        ),
        None => format!(
            "unknown field `{unknown}` (known fields: {})",
            known.join(", ")
        ),
    }
}

/// The dotted path of the key at `line`:`column`: the block-style keys of less-indented lines
/// above, then the flow-style keys (`{interval: 5s}`) open before the column on that line.
fn field_at(text: &str, line: u64, column: Option<u64>) -> Option<String> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (number, raw) in text.lines().enumerate().take(line as usize) {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']);
        if key.is_empty() || key.contains([' ', '{', '[']) {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_owned()));
        if number + 1 == line as usize {
            break;
        }
    }
    let mut path: Vec<String> = stack.into_iter().map(|(_, k)| k).collect();
    let here = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    if let Some(column) = column {
        let before: String = here
            .chars()
            .take(usize::try_from(column).ok()?.saturating_sub(1))
            .collect();
        // What follows the line's block key is flow style, if anything is.
        if let Some((_, flow)) = before.split_once(':') {
            path.extend(flow_keys(flow));
        }
    }
    (!path.is_empty()).then(|| path.join("."))
}

/// The keys of the flow mappings still open at the end of `before` (the text of a line up to a
/// position), outermost first: `{a: 1, b: {c: ` gives `b`, `c`.
fn flow_keys(before: &str) -> Vec<String> {
    let mut open: Vec<(char, Option<String>)> = Vec::new();
    let mut token = String::new();
    let mut quote = None;
    let mut chars = before.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            match c {
                _ if c == q => quote = None,
                '\\' if q == '"' => token.extend(chars.next()),
                _ => token.push(c),
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '{' | '[' => {
                open.push((c, None));
                token.clear();
            }
            '}' | ']' => {
                open.pop();
                token.clear();
            }
            ',' => {
                if let Some((_, key)) = open.last_mut() {
                    *key = None;
                }
                token.clear();
            }
            ':' if chars.peek().is_none_or(|n| n.is_whitespace()) => {
                if let Some(('{', key)) = open.last_mut() {
                    *key = Some(token.trim().to_owned());
                }
                token.clear();
            }
            _ => token.push(c),
        }
    }
    open.into_iter().filter_map(|(_, key)| key).collect()
}

/// `text` (a funko.yml) with its top-level `scale:` set to `scale` (added after `name:` when
/// absent; a block of bounds is replaced whole), keeping comments and everything else as written.
pub fn set_scale(text: &str, scale: u32) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let line = format!("scale: {scale}");
    match lines.iter().position(|l| l.starts_with("scale:")) {
        Some(i) => {
            let block = lines[i + 1..]
                .iter()
                .take_while(|l| l.starts_with([' ', '\t']))
                .count();
            lines.splice(i..=i + block, [line]);
        }
        None => {
            let at = lines
                .iter()
                .position(|l| l.starts_with("name:"))
                .map_or(lines.len(), |i| i + 1);
            lines.insert(at, line);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Sets the fixed scale in the funko.yml of the funko in `dir`, checking the result parses before
/// it replaces the file (atomically), so a broken funko.yml is never left behind. Returns the
/// scale it had. An autoscaled funko is refused: its count follows load.
pub fn write_scale(dir: &Path, scale: u32) -> Result<u32, Problem> {
    let funko = load_funko(dir)?;
    if let Some(refusal) = funko.refuses_fixed_scale() {
        return Err(refusal);
    }
    let file = dir.join(SPEC_FILE);
    let updated = set_scale(&funko.text, scale);
    parse_spec(&updated).map_err(|mut p| {
        p.file = file.clone();
        p
    })?;
    let tmp = dir.join(format!(".{SPEC_FILE}.tmp"));
    std::fs::write(&tmp, &updated)
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| Problem::whole(&file, format!("cannot be written: {e}")))?;
    Ok(funko.spec.scale.min())
}

/// The line and column of the value of `path` in funko.yml `text`: a top-level key, or
/// `block.key` written in block or flow style; the block's own position when the key is not
/// found in it.
pub(crate) fn locate_field(text: &str, path: &str) -> (Option<u64>, Option<u64>) {
    let Some((top, key)) = path.split_once('.') else {
        return locate_key(text, path);
    };
    let opener = format!("{top}:");
    let mut offset = 0;
    let mut block: Option<(usize, usize)> = None;
    for line in text.split_inclusive('\n') {
        match block {
            None if line.starts_with(&opener) => block = Some((offset + opener.len(), text.len())),
            Some((start, _))
                if !line.starts_with([' ', '\t', '#', '}', ']']) && !line.trim().is_empty() =>
            {
                block = Some((start, offset));
                break;
            }
            _ => {}
        }
        offset += line.len();
    }
    let found = block.and_then(|(start, end)| {
        let pattern = format!(
            r#"(?:^|[\s{{,])["']?{}["']?[ \t]*:[ \t]*"#,
            regex::escape(key)
        );
        let found = regex::Regex::new(&pattern).ok()?.find(&text[start..end])?;
        Some(start + found.end())
    });
    let Some(at) = found else {
        return locate_key(text, top);
    };
    let line = text[..at].matches('\n').count() + 1;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..at].chars().count() + 1;
    (Some(line as u64), Some(column as u64))
}

/// The line and column of the value of top-level `key` in funko.yml `text`.
pub(crate) fn locate_key(text: &str, key: &str) -> (Option<u64>, Option<u64>) {
    let prefix = format!("{key}:");
    for (index, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix(&prefix) {
            let column = prefix.len() + 1 + (rest.len() - rest.trim_start().len());
            return (Some(index as u64 + 1), Some(column as u64));
        }
    }
    (None, None)
}

fn check_folder_name(dir: &Path, file: &Path, text: &str, spec: &Spec) -> Result<(), Problem> {
    let folder = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if folder == spec.name.as_str() {
        return Ok(());
    }
    let (line, column) = locate_key(text, "name");
    Err(Problem {
        file: file.to_owned(),
        line,
        column,
        field: Some("name".to_owned()),
        message: format!(
            "the name is `{}` but the folder is `{folder}`; they must agree (rename the folder or change `name`)",
            spec.name
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(yaml: &str) -> Problem {
        parse_spec(yaml).expect_err("the spec should be rejected")
    }

    #[test]
    fn a_minimal_spec_gets_the_defaults() {
        let spec = parse_spec("name: hello\n").unwrap();
        assert_eq!(spec.scale, crate::Scale::Fixed(1));
        assert_eq!(spec.healthcheck.path, "/ping");
        assert_eq!(spec.timeout.0, std::time::Duration::from_secs(30));
        assert_eq!(spec.runtime, None);
    }

    #[test]
    fn a_full_spec_parses() {
        let spec = parse_spec(
            "name: hello\nruntime: python\nscale: 3\nenv: {GREETING: hi, N: 3, ON: true}\n\
             secrets: [api-key]\nhealthcheck: {path: /health, interval: 1s, timeout: 500ms, start_period: 0s, retries: 2}\n\
             resources: {memory: 128M, cpus: 0.5}\ntimeout: 1m\noptions: {handler: main.py, debug: true}\n",
        )
        .unwrap();
        assert_eq!(spec.scale, crate::Scale::Fixed(3));
        assert_eq!(spec.env.len(), 3);
        assert_eq!(spec.resources.memory, Some(crate::Memory(128 << 20)));
        assert_eq!(spec.options["debug"].0, serde_json::json!(true));
    }

    #[test]
    fn an_unknown_key_suggests_the_closest_field() {
        let p = problem("name: x\nscael: 2\n");
        assert_eq!((p.line, p.column), (Some(2), Some(1)));
        assert!(p.message.contains("did you mean `scale`?"), "{p}");
        assert!(
            !p.message.contains("at line"),
            "the position is printed once: {p}"
        );
    }

    #[test]
    fn a_nested_error_names_the_dotted_field() {
        let p = problem("name: x\nhealthcheck:\n  path: /ping\n  interval: 5 parsecs\n");
        assert_eq!(p.field.as_deref(), Some("healthcheck.interval"));
        assert_eq!(p.line, Some(4));
        assert!(p.message.contains("not a duration"), "{p}");
    }

    #[test]
    fn wrong_types_and_bad_yaml_are_located() {
        let p = problem("name: x\nscale: lots\n");
        assert_eq!((p.line, p.field.as_deref()), (Some(2), Some("scale")));
        let p = problem("name: x\nenv: [unclosed\n");
        assert!(p.line.is_some(), "{p}");
    }

    #[test]
    fn bad_names_are_rejected_with_the_rule() {
        for (name, needle) in [
            ("Hello", "lowercase"),
            ("../x", "contains `.`"),
            (&"a".repeat(41), "41 characters"),
            ("''", "cannot be empty"),
        ] {
            let p = problem(&format!("name: {name}\n"));
            assert!(p.message.contains(needle), "{name}: {p}");
            assert_eq!(p.field.as_deref(), Some("name"));
        }
    }

    #[test]
    fn messages_speak_funko_yml_not_rust() {
        for yaml in ["name: a\nscale: -1\n", "name:\n", "name: c\nname: c\n", ""] {
            let p = problem(yaml);
            for rust in ["u32", "Option<", "Policy", "Options"] {
                assert!(!p.message.contains(rust), "{yaml:?}: {p}");
            }
        }
    }

    #[test]
    fn scale_is_replaced_or_added_and_comments_stay() {
        assert_eq!(
            set_scale("# c\nname: a\nscale: 1\n", 3),
            "# c\nname: a\nscale: 3\n"
        );
        assert_eq!(
            set_scale("name: a\nruntime: python\n", 0),
            "name: a\nscale: 0\nruntime: python\n"
        );
    }

    #[test]
    fn a_block_of_bounds_is_replaced_whole_by_a_count() {
        assert_eq!(
            set_scale("name: a\nscale:\n  min: 0\n  max: 4\ntimeout: 5s\n", 2),
            "name: a\nscale: 2\ntimeout: 5s\n"
        );
    }

    #[test]
    fn writing_a_count_over_bounds_is_refused_and_the_file_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("auto");
        std::fs::create_dir(&dir).unwrap();
        let text = "name: auto\nscale:\n  min: 0\n  max: 4\nidle: {pause_after: 1m}\n";
        std::fs::write(dir.join(SPEC_FILE), text).unwrap();
        let p = write_scale(&dir, 3).unwrap_err();
        assert_eq!((p.field.as_deref(), p.line), (Some("scale"), Some(2)));
        assert!(p.message.contains("autoscaled between 0 and 4"), "{p}");
        assert_eq!(std::fs::read_to_string(dir.join(SPEC_FILE)).unwrap(), text);

        let fixed = tmp.path().join("fixed");
        std::fs::create_dir(&fixed).unwrap();
        std::fs::write(fixed.join(SPEC_FILE), "name: fixed\nscale: 2\n").unwrap();
        assert_eq!(write_scale(&fixed, 5), Ok(2));
        assert_eq!(
            load_funko(&fixed).unwrap().spec.scale,
            crate::Scale::Fixed(5)
        );
    }

    #[test]
    fn an_error_about_a_whole_block_points_at_its_key() {
        let p = problem("name: x\ncors:\n  methods: [GET]\n  headers: [A]\n");
        assert_eq!((p.field.as_deref(), p.line), (Some("cors"), Some(2)), "{p}");
        assert!(p.message.contains("missing field `origins`"), "{p}");
        let p = problem("name: x\ntimeout:\n  a: 1\n");
        assert_eq!(
            (p.field.as_deref(), p.line),
            (Some("timeout"), Some(2)),
            "{p}"
        );
        let p = problem("name: x\nenv:\n  PORT: 1\n");
        assert_eq!(
            (p.field.as_deref(), p.line),
            (Some("env.PORT"), Some(3)),
            "an error about the first key itself stays on it: {p}"
        );
    }

    #[test]
    fn a_missing_name_is_an_error() {
        let p = problem("scale: 1\n");
        assert!(p.message.contains("name"), "{p}");
    }

    #[test]
    fn the_folder_name_must_match() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hello");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(SPEC_FILE), "name: other\n").unwrap();
        let p = load_funko(&dir).unwrap_err();
        assert!(p.message.contains("folder is `hello`"), "{p}");
        assert_eq!(p.line, Some(1));
    }

    #[test]
    fn a_folder_without_funko_yml_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let p = load_funko(tmp.path()).unwrap_err();
        assert!(p.message.contains("has no funko.yml"), "{p}");
    }

    #[test]
    fn a_funkos_dir_reports_every_invalid_funko_and_keeps_the_valid_ones() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, yaml) in [
            ("good", "name: good\n"),
            ("bad", "name: bad\nscale: x\n"),
            ("worse", "nam: worse\n"),
        ] {
            std::fs::create_dir(tmp.path().join(name)).unwrap();
            std::fs::write(tmp.path().join(name).join(SPEC_FILE), yaml).unwrap();
        }
        std::fs::create_dir(tmp.path().join(".git")).unwrap();
        let (funkos, problems) = load_funkos_dir(tmp.path()).unwrap();
        assert_eq!(funkos.len(), 1);
        assert_eq!(problems.len(), 2);
    }

    /// Cases per fuzz property: `FAASO_FUZZ_CASES` (the flagged run uses 1000000), else a
    /// short CI run.
    fn fuzz_config() -> proptest::test_runner::Config {
        let cases = std::env::var("FAASO_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        proptest::test_runner::Config {
            cases,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        }
    }

    /// funko.yml-shaped text: real keys and values in random order and nesting, so the
    /// validator behind the YAML parser is reached too.
    fn spec_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop::sample::select(vec![
            "name: ",
            "runtime: ",
            "scale: ",
            "env: ",
            "secrets: ",
            "healthcheck: ",
            "path: ",
            "interval: ",
            "timeout: ",
            "start_period: ",
            "retries: ",
            "resources: ",
            "memory: ",
            "cpus: ",
            "hardening: ",
            "read_only: ",
            "pids_limit: ",
            "options: ",
            "min: ",
            "max: ",
            "target: ",
            "limit: ",
            "queue: ",
            "stable_window: ",
            "panic_window: ",
            "idle: ",
            "pause_after: ",
            "stop_after: ",
            "hello",
            "python",
            "node",
            "binary",
            "../x",
            "/ping",
            "-1",
            "0",
            "3",
            "4294967296",
            "1.5",
            "0.0001",
            "128M",
            "1e99",
            "5 parsecs",
            "500ms",
            "1h",
            "true",
            "null",
            "~",
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "- ",
            "\n",
            "\n  ",
            "\n    ",
            "'",
            "\"",
            "&a",
            "*a",
            "!!str ",
            "#",
            "\t",
            "\u{0}",
            "é",
            "A_B",
            "=",
        ]);
        prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
    }

    proptest::proptest! {
        #![proptest_config(fuzz_config())]

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = parse_spec(&text);
        }

        #[test]
        fn spec_shaped_text_never_panics(text in spec_like()) {
            let _ = parse_spec(&text);
        }
    }
}
