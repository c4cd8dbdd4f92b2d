//! The command line, parsed by hand: two commands and a few flags do not need a parser crate.

use joinkeeper::rogue::Mode;

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
        /// With `--revoke-all`: what to do about the Nodes that joined with a revoked token and
        /// that no instance of the cluster stands behind (report only by default).
        leaked: Mode,
        json: bool,
    },
}

pub const USAGE: &str = "usage: joinkeeper status [--cluster C] [--json]
       joinkeeper rotate --cluster C [--revoke-all [--cordon-leaked | --delete-leaked]] [--json]
       joinkeeper help";

/// Parses the arguments after the program name. Errors are one line for the usage message.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err("a command is required".into());
    };
    let mut cluster = None;
    let mut json = false;
    let mut revoke_all = false;
    let mut leaked = Mode::Report;
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
            "--cordon-leaked" | "--delete-leaked" if inline.is_none() && command == "rotate" => {
                if leaked != Mode::Report {
                    return Err("--cordon-leaked and --delete-leaked exclude each other".into());
                }
                leaked = if flag == "--cordon-leaked" {
                    Mode::Cordon
                } else {
                    Mode::Delete
                };
            }
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
        "rotate" if leaked != Mode::Report && !revoke_all => {
            Err("--cordon-leaked and --delete-leaked go with --revoke-all".into())
        }
        "rotate" => Ok(Command::Rotate {
            cluster: cluster.ok_or("rotate needs --cluster C")?,
            revoke_all,
            leaked,
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
                leaked: Mode::Report,
                json: false
            })
        );
        assert_eq!(
            p(&[
                "rotate",
                "--cluster=prod",
                "--revoke-all",
                "--delete-leaked"
            ]),
            Ok(Command::Rotate {
                cluster: "prod".into(),
                revoke_all: true,
                leaked: Mode::Delete,
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
            &["status", "--cordon-leaked"],
            &["rotate", "--cluster", "a", "--cordon-leaked"],
            &[
                "rotate",
                "--cluster",
                "a",
                "--revoke-all",
                "--cordon-leaked",
                "--delete-leaked",
            ],
            &[
                "rotate",
                "--cluster",
                "a",
                "--revoke-all",
                "--delete-leaked=yes",
            ],
            &["status", "--cluster", "a", "--cluster", "b"],
            &["status", "--json=yes"],
            &["statsu"],
            &["status", "extra"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
