//! Command-line parsing (by hand: no argument-parsing crate is available offline).

use std::time::Duration;

pub const USAGE: &str = "\
usage: otel-ctx-dump [--json] [--thread TID] [--watch SECONDS [--samples N]] PID

Reads process PID's OpenTelemetry process context and each thread's span context
(the otel_thread_ctx_v1 TLS slot), the way the OpenTelemetry eBPF profiler does.
Each thread is stopped with ptrace only for the few reads it takes.

options:
  --json             one JSON object (with --watch: one JSON line per change)
  --thread TID       read only thread TID
  --watch SECONDS    sample every SECONDS (decimals allowed) and print one line per change,
                     until Ctrl-C or the process exits
  --samples N        with --watch: stop after N samples
  -h, --help         this text
  -V, --version      the version

exit codes:
  0    process context and a module exporting otel_thread_ctx_v1 found
  1    other failure (e.g. PID is a kernel thread)
  2    bad command line
  3    no such process, or a zombie
  4    permission denied: run as the target's user (with ptrace allowed by
       /proc/sys/kernel/yama/ptrace_scope) or with CAP_SYS_PTRACE (e.g. as root);
       or another tracer holds the threads (the message names it)
  5    no module exports otel_thread_ctx_v1 (the process context, if any, is still shown)
  6    process context absent or invalid (threads are still shown)
  130  interrupted (every thread was released first)
";

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub pid: i32,
    pub json: bool,
    pub thread: Option<i32>,
    pub watch: Option<Duration>,
    pub samples: Option<u64>,
}

/// The outcome of parsing.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Run(Options),
    Help,
    Version,
}

fn positive_id(what: &str, s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{what} must be a positive integer, got {s:?}")),
    }
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut pid = None;
    let mut json = false;
    let mut thread = None;
    let mut watch = None;
    let mut samples = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--json" => json = true,
            "--thread" => thread = Some(positive_id("--thread", &value("--thread")?)?),
            "--watch" => {
                let v = value("--watch")?;
                match v.parse::<f64>() {
                    Ok(s) if s.is_finite() && s > 0.0 && s <= 86400.0 => watch = Some(Duration::from_secs_f64(s)),
                    _ => return Err(format!("--watch takes a number of seconds > 0, got {v:?}")),
                }
            }
            "--samples" => {
                let v = value("--samples")?;
                match v.parse::<u64>() {
                    Ok(n) if n > 0 => samples = Some(n),
                    _ => return Err(format!("--samples takes a positive integer, got {v:?}")),
                }
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s:?}")),
            s => {
                if pid.is_some() {
                    return Err(format!("unexpected argument {s:?}: only one PID"));
                }
                pid = Some(positive_id("PID", s)?);
            }
        }
    }
    let pid = pid.ok_or("missing PID")?;
    if samples.is_some() && watch.is_none() {
        return Err("--samples only makes sense with --watch".into());
    }
    Ok(Command::Run(Options {
        pid,
        json,
        thread,
        watch,
        samples,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_options() {
        assert_eq!(
            p(&["--json", "12", "--thread", "13"]),
            Ok(Command::Run(Options {
                pid: 12,
                json: true,
                thread: Some(13),
                watch: None,
                samples: None
            }))
        );
        match p(&["--watch", "0.5", "--samples", "3", "9"]) {
            Ok(Command::Run(o)) => {
                assert_eq!(o.watch, Some(Duration::from_millis(500)));
                assert_eq!(o.samples, Some(3));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p(&["--help"]), Ok(Command::Help));
    }

    #[test]
    fn rejects_bad_command_lines() {
        for bad in [
            &[][..],
            &["abc"],
            &["0"],
            &["-5"],
            &["1", "2"],
            &["--thread"],
            &["--thread", "x", "1"],
            &["--watch", "0", "1"],
            &["--watch", "nan", "1"],
            &["--samples", "2", "1"],
            &["--bogus", "1"],
        ] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
    }
}
