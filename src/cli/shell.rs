//! `hive completions SHELL` and `hive man`: shell completion scripts and a man page, generated
//! from the same clap definitions the parser uses, so neither can fall behind a new flag.

use std::io::Write;

use clap::{Command, ValueEnum};
use clap_complete::Shell as CompleteShell;

/// The shells `hive completions` writes a script for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

impl Shell {
    fn generator(self) -> CompleteShell {
        match self {
            Shell::Bash => CompleteShell::Bash,
            Shell::Zsh => CompleteShell::Zsh,
            Shell::Fish => CompleteShell::Fish,
            Shell::Powershell => CompleteShell::PowerShell,
        }
    }
}

/// The completion script for `shell`, for the command tree `cmd` (named by its `bin` name).
pub fn completions(shell: Shell, mut cmd: Command, out: &mut dyn Write) {
    let bin = cmd.get_name().to_string();
    clap_complete::generate(shell.generator(), &mut cmd, bin, out);
}

/// The man page (roff) of the whole command: the top page with its subcommands listed, then one
/// section per subcommand with its own options, so `man hive` answers for every command.
pub fn man_page(cmd: Command, out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = cmd;
    cmd.build();
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        writeln!(
            out,
            ".SH \"{}\"",
            roff_heading(&format!("hive {}", sub.get_name()))
        )?;
        let man = clap_mangen::Man::new(sub.clone());
        let mut body = Vec::new();
        man.render_description_section(&mut body)?;
        man.render_options_section(&mut body)?;
        if sub.has_subcommands() {
            man.render_subcommands_section(&mut body)?;
        }
        out.write_all(&demote_headings(&body))?;
    }
    Ok(())
}

/// A subcommand's sections become sub-headings (`.SS`) under its own `.SH`.
fn demote_headings(roff: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(roff)
        .lines()
        .map(|l| match l.strip_prefix(".SH ") {
            Some(rest) => format!(".SS {rest}\n"),
            None => format!("{l}\n"),
        })
        .collect::<String>()
        .into_bytes()
}

fn roff_heading(s: &str) -> String {
    s.to_uppercase().replace('"', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn tree() -> Command {
        Command::new("hive")
            .about("Agentless patching")
            .subcommand(
                Command::new("scan")
                    .about("Find missing patches")
                    .arg(Arg::new("inventory").long("inventory").short('i')),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn every_shell_gets_a_script_naming_the_subcommands() {
        for shell in Shell::value_variants() {
            let mut out = Vec::new();
            completions(*shell, tree(), &mut out);
            let text = String::from_utf8(out).expect("utf-8 script");
            assert!(text.contains("scan"), "{shell:?}: {text}");
            assert!(text.contains("inventory"), "{shell:?}");
        }
    }

    #[test]
    fn the_man_page_has_a_section_per_visible_subcommand() {
        let mut out = Vec::new();
        man_page(tree(), &mut out).expect("renders");
        let text = String::from_utf8(out).expect("utf-8 roff");
        assert!(text.starts_with(".ie"), "{}", &text[..40.min(text.len())]);
        assert!(text.contains(".SH \"HIVE SCAN\""), "{text}");
        assert!(text.contains("Find missing patches"));
        assert!(text.contains("\\-\\-inventory"), "{text}");
        assert!(!text.contains("HIVE SECRET"));
    }
}
