//! The command line, parsed by hand: two commands and four flags do not need a parser crate.

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    Status {
        cluster: Option<String>,
        json: bool,
    },
    Rotate {
        cluster: String,
        revoke_all: bool,
        json: bool,
    },
}

pub const USAGE: &str = "usage: joinkeeper status [--cluster C] [--json]
       joinkeeper rotate --cluster C [--revoke-all] [--json]
       joinkeeper help";

/// Parses the arguments after the program name. Errors are one line for the usage message.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err("a command is required".into());
    };
    let mut cluster = None;
    let mut json = false;
    let mut revoke_all = false;
    let mut i = 0;
    while i < rest.len() {
        let arg = rest[i].as_str();
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg, None),
        };
        match flag {
            "--cluster" => {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        rest.get(i)
                            .cloned()
                            .ok_or("--cluster needs a cluster name")?
                    }
                };
                if value.is_empty() || value.starts_with('-') {
                    return Err("--cluster needs a cluster name".into());
                }
                if cluster.replace(value).is_some() {
                    return Err("--cluster given twice".into());
                }
            }
            "--json" if inline.is_none() => json = true,
            "--revoke-all" if inline.is_none() && command == "rotate" => revoke_all = true,
            "-h" | "--help" => return Ok(Command::Help),
            _ => {
                return Err(format!(
                    "unknown argument {:?} for {command}",
                    truncate(arg)
                ))
            }
        }
        i += 1;
    }
    match command.as_str() {
        "status" => Ok(Command::Status { cluster, json }),
        "rotate" => Ok(Command::Rotate {
            cluster: cluster.ok_or("rotate needs --cluster C")?,
            revoke_all,
            json,
        }),
        "help" | "-h" | "--help" if rest.is_empty() => Ok(Command::Help),
        "--version" | "version" if rest.is_empty() => Ok(Command::Version),
        other => Err(format!("unknown command {:?}", truncate(other))),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn commands_and_flags() {
        assert_eq!(
            p(&["status"]),
            Ok(Command::Status {
                cluster: None,
                json: false
            })
        );
        assert_eq!(
            p(&["status", "--cluster=demo", "--json"]),
            Ok(Command::Status {
                cluster: Some("demo".into()),
                json: true
            })
        );
        assert_eq!(
            p(&["rotate", "--revoke-all", "--cluster", "prod"]),
            Ok(Command::Rotate {
                cluster: "prod".into(),
                revoke_all: true,
                json: false
            })
        );
        assert_eq!(p(&["help"]), Ok(Command::Help));
        assert_eq!(p(&["status", "--help"]), Ok(Command::Help));
    }

    #[test]
    fn mistakes_are_refused() {
        for bad in [
            &[][..],
            &["rotate"],
            &["rotate", "--cluster"],
            &["rotate", "--cluster", "--revoke-all"],
            &["status", "--revoke-all"],
            &["status", "--cluster", "a", "--cluster", "b"],
            &["status", "--json=yes"],
            &["statsu"],
            &["status", "extra"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
