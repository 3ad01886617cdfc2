//! The readiness probe every funko's image carries (probe/main.rs, compiled by build.rs): Swarm
//! runs it as the service healthcheck, so no image needs curl or an interpreter to be probed.

/// The probe program: a static executable for the machine faaso was built for.
pub const PROBE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/faaso-probe"));
/// Its path in every build context.
pub const PROBE_FILE: &str = "faaso-probe";
/// Its path in every image.
pub const PROBE_PATH: &str = "/faaso/probe";

/// The Dockerfile line that puts the probe where the healthcheck runs it.
pub fn probe_copy_line() -> String {
    format!("COPY {PROBE_FILE} {PROBE_PATH}")
}

/// How a Dockerfile lets its container be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probed {
    /// It copies the probe to [`PROBE_PATH`].
    ByProbe,
    /// It has a HEALTHCHECK of its own (and no probe).
    ByOwnHealthcheck,
    /// Neither.
    Not,
}

/// What `dockerfile` does about readiness, read from its instructions (case-insensitive, as
/// Docker reads them).
pub fn probed(dockerfile: &str) -> Probed {
    let mut own = false;
    for line in dockerfile.lines() {
        // Flags (`--chown=…`) do not change where the probe goes.
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        match words.as_slice() {
            [copy, from, to]
                if (is(copy, "COPY") || is(copy, "ADD"))
                    && *from == PROBE_FILE
                    && *to == PROBE_PATH =>
            {
                return Probed::ByProbe;
            }
            [check, rest @ ..] if is(check, "HEALTHCHECK") => {
                own = !matches!(rest, [none] if is(none, "NONE"));
            }
            _ => {}
        }
    }
    if own {
        Probed::ByOwnHealthcheck
    } else {
        Probed::Not
    }
}

fn is(word: &str, instruction: &str) -> bool {
    word.eq_ignore_ascii_case(instruction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// The probe as build.rs wrote it (the bytes [`PROBE`] holds).
    const PROBE_BIN: &str = concat!(env!("OUT_DIR"), "/faaso-probe");

    /// The probe's exit code for `path` on a server that answers one connection with `answer`
    /// (`None`: it closes the connection unanswered).
    fn probe_against(answer: Option<&'static str>, path: &str) -> i32 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the probe closed before its request ended");
                request.extend_from_slice(&buf[..n]);
            }
            if let Some(answer) = answer {
                stream.write_all(answer.as_bytes()).unwrap();
            }
            String::from_utf8(request).unwrap()
        });
        let status = Command::new(PROBE_BIN)
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .arg("2000")
            .status()
            .unwrap();
        let request = server.join().unwrap();
        assert!(
            request.starts_with(&format!("GET {path} HTTP/1.1\r\n")),
            "{request}"
        );
        status.code().unwrap()
    }

    #[test]
    fn the_probe_passes_on_2xx_only() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong";
        assert_eq!(probe_against(Some(ok), "/ping"), 0);
        let no_content = "HTTP/1.0 204 No Content\r\n\r\n";
        assert_eq!(probe_against(Some(no_content), "/healthz"), 0);
        let failing = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(probe_against(Some(failing), "/ping"), 1);
        assert_eq!(probe_against(Some("SSH-2.0-OpenSSH\r\n"), "/ping"), 1);
        assert_eq!(probe_against(None, "/ping"), 1);
    }

    #[test]
    fn the_probe_fails_on_a_closed_port_and_gives_up_at_its_timeout() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ping", closed.local_addr().unwrap());
        drop(closed);
        assert_eq!(
            Command::new(PROBE_BIN).arg(&url).status().unwrap().code(),
            Some(1)
        );
        // A server that accepts and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ping", silent.local_addr().unwrap());
        let start = Instant::now();
        let status = Command::new(PROBE_BIN)
            .args([&url, "300"])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(1));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn the_probe_is_a_static_executable() {
        // ELF, 64-bit little-endian, with no PT_INTERP program header: no dynamic loader is
        // asked for, so it starts in a FROM scratch image.
        assert_eq!(&PROBE[..4], b"\x7fELF");
        assert_eq!((PROBE[4], PROBE[5]), (2, 1), "ELF64 little-endian");
        let u16_at = |at: usize| u16::from_le_bytes([PROBE[at], PROBE[at + 1]]) as usize;
        let phoff = u64::from_le_bytes(PROBE[0x20..0x28].try_into().unwrap()) as usize;
        let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
        assert!(phnum > 0);
        const PT_INTERP: u32 = 3;
        for i in 0..phnum {
            let at = phoff + i * phentsize;
            let kind = u32::from_le_bytes(PROBE[at..at + 4].try_into().unwrap());
            assert_ne!(kind, PT_INTERP, "the probe is dynamically linked");
        }
    }

    #[test]
    fn a_dockerfile_is_probed_by_the_probe_or_its_own_healthcheck() {
        let copy = format!("FROM scratch\n{}\n", probe_copy_line());
        assert_eq!(probed(&copy), Probed::ByProbe);
        let flagged = "from x\ncopy --chown=1:1 faaso-probe /faaso/probe\n";
        assert_eq!(probed(flagged), Probed::ByProbe);
        let own = "FROM x\nHEALTHCHECK CMD curl -f http://localhost:3000/ping\n";
        assert_eq!(probed(own), Probed::ByOwnHealthcheck);
        assert_eq!(probed("FROM x\nHEALTHCHECK NONE\n"), Probed::Not);
        assert_eq!(probed("FROM x\nCOPY faaso-probe /probe\n"), Probed::Not);
        assert_eq!(probed("FROM x\nCOPY . /app/\n"), Probed::Not);
    }
}
