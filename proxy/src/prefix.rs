//! The routing convention: `/funko/<name>/<rest>?<q>` is `/<rest>?<q>` of funko `<name>`.

/// The path prefix under which funkos are served.
const PREFIX: &str = "/funko/";

/// Splits a request path into the funko's name and the path the instance sees (always starting
/// with `/`). Percent-encoding is left exactly as the client sent it.
pub(crate) fn split(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix(PREFIX)?;
    let (funko, rest) = match after.find('/') {
        Some(i) => after.split_at(i),
        None => (after, "/"),
    };
    if funko.is_empty() {
        return None;
    }
    Some((funko, rest))
}

/// The path and query sent to the instance.
pub(crate) fn upstream_path_and_query(rest: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_and_slashed_funko_paths_reach_the_root() {
        assert_eq!(split("/funko/hello"), Some(("hello", "/")));
        assert_eq!(split("/funko/hello/"), Some(("hello", "/")));
    }

    #[test]
    fn the_rest_of_the_path_is_kept_verbatim() {
        assert_eq!(
            split("/funko/hello/a/%2F/b%20c"),
            Some(("hello", "/a/%2F/b%20c"))
        );
        assert_eq!(upstream_path_and_query("/x", Some("a=1&b")), "/x?a=1&b");
    }

    #[test]
    fn other_paths_are_not_funko_paths() {
        assert_eq!(split("/funko/"), None);
        assert_eq!(split("/funko"), None);
        assert_eq!(split("/funkos/hello"), None);
        assert_eq!(split("/"), None);
    }
}
