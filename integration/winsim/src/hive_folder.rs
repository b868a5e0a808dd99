//! A folder of the 2001 HIVE scripts, as an administrator copies it off the old share for
//! `hive adopt`: built from HIVE's own description, in the letter case a Windows share gives.
//!
//! ```text
//! Machines\<machine>\lastrun.log         one folder per target (its NetBIOS name); hfnetchk -o tab
//! HotFixes\<bulletin>\hiveexec.cmd        approved: the distribution files and the admin's script
//! Ignore\<bulletin>\reason.txt            not to be installed
//! TBE\<bulletin>\notes.txt                to be engineered
//! Installs\<machine>.cmd                  the generated install script: each hiveexec.cmd in
//!                                         order, Qchain last when more than one, then the reboot
//! Logs\<machine>.log                      what HIVE did there
//! Archive\<date>\<machine>.log            previous lastrun.log files, by date
//! ```

use std::io;
use std::path::Path;

/// The spelling of each folder, as HIVE's share had it (any case must do for hive).
pub const FOLDERS: [(&str, &str); 7] = [
    ("machines", "Machines"),
    ("hotfixes", "HotFixes"),
    ("ignore", "Ignore"),
    ("tbe", "TBE"),
    ("installs", "Installs"),
    ("logs", "Logs"),
    ("archive", "Archive"),
];

/// One approved bulletin: its distribution files and its `hiveexec.cmd`.
#[derive(Debug, Clone)]
pub struct HiveHotfix {
    pub bulletin: String,
    pub title: String,
    pub files: Vec<(String, Vec<u8>)>,
    pub script: String,
}

impl HiveHotfix {
    /// A hotfix run the usual way: `<installer> -z -q -m`, and the script's exit code its own.
    pub fn silent(bulletin: &str, title: &str, installer: &str, bytes: Vec<u8>) -> HiveHotfix {
        HiveHotfix {
            bulletin: bulletin.to_string(),
            title: title.to_string(),
            files: vec![(installer.to_string(), bytes)],
            script: format!(
                "@echo off\r\nrem {bulletin}: {title}\r\n{installer} -z -q -m\r\n\
                 if errorlevel 1 exit /b %errorlevel%\r\n"
            ),
        }
    }
}

/// A HIVE folder to write.
#[derive(Debug, Clone, Default)]
pub struct HiveFolder {
    /// Machine folder names (a name that is no valid host name is allowed: hive must report it).
    pub machines: Vec<String>,
    pub hotfixes: Vec<HiveHotfix>,
    /// Bulletin and why it is ignored.
    pub ignore: Vec<(String, String)>,
    pub tbe: Vec<String>,
    /// The UNC path HIVE's scripts called from (`\\HIVESRV\Hive`).
    pub share: String,
    /// The day the previous lastrun.log files were archived (`2001-09-01`).
    pub archived_on: String,
    /// The day of each machine's current lastrun.log (its modification time), after
    /// `archived_on`.
    pub last_run_on: String,
    /// `Tools\<name>` files (qchain.exe).
    pub tools: Vec<(String, Vec<u8>)>,
}

impl HiveFolder {
    pub fn new() -> HiveFolder {
        HiveFolder {
            share: r"\\HIVESRV\Hive".into(),
            archived_on: "2001-09-01".into(),
            last_run_on: "2001-09-02".into(),
            ..HiveFolder::default()
        }
    }

    pub fn machine(mut self, name: &str) -> Self {
        self.machines.push(name.to_string());
        self
    }

    pub fn hotfix(mut self, h: HiveHotfix) -> Self {
        self.hotfixes.push(h);
        self
    }

    pub fn ignored(mut self, bulletin: &str, why: &str) -> Self {
        self.ignore.push((bulletin.to_string(), why.to_string()));
        self
    }

    pub fn tool(mut self, name: &str, bytes: Vec<u8>) -> Self {
        self.tools.push((name.to_string(), bytes));
        self
    }

    pub fn to_be_engineered(mut self, bulletin: &str) -> Self {
        self.tbe.push(bulletin.to_string());
        self
    }

    /// Write the folder under `root` (created).
    pub fn write(&self, root: &Path) -> io::Result<()> {
        let dir = |key: &str| {
            let name = FOLDERS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .unwrap_or(key);
            root.join(name)
        };
        for (_, name) in FOLDERS {
            std::fs::create_dir_all(root.join(name))?;
        }
        for h in &self.hotfixes {
            let d = dir("hotfixes").join(&h.bulletin);
            std::fs::create_dir_all(&d)?;
            for (name, bytes) in &h.files {
                std::fs::write(d.join(name), bytes)?;
            }
            std::fs::write(d.join("hiveexec.cmd"), &h.script)?;
        }
        for (b, why) in &self.ignore {
            let d = dir("ignore").join(b);
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("reason.txt"), format!("{why}\r\n"))?;
        }
        for b in &self.tbe {
            let d = dir("tbe").join(b);
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("notes.txt"), "testing on the lab server\r\n")?;
        }
        if !self.tools.is_empty() {
            let tools = root.join("Tools");
            std::fs::create_dir_all(&tools)?;
            for (name, bytes) in &self.tools {
                std::fs::write(tools.join(name), bytes)?;
            }
        }
        let last_run = day_start(&self.last_run_on)?;
        let archive = dir("archive").join(&self.archived_on);
        std::fs::create_dir_all(&archive)?;
        for m in &self.machines {
            let d = dir("machines").join(m);
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("lastrun.log"), self.lastrun(m))?;
            std::fs::File::options()
                .write(true)
                .open(d.join("lastrun.log"))?
                .set_modified(last_run)?;
            std::fs::write(archive.join(format!("{m}.log")), self.lastrun(m))?;
            std::fs::write(
                dir("installs").join(format!("{m}.cmd")),
                self.install_script(),
            )?;
            std::fs::write(
                dir("logs").join(format!("{m}.log")),
                format!(
                    "{} 02:00 {m}: hfnetchk scan, {} patch(es) NOT Found\r\n",
                    self.archived_on,
                    self.hotfixes.len()
                ),
            )?;
        }
        Ok(())
    }

    /// hfnetchk `-o tab`: machine, product, bulletin, title, Q number, URL, reason, description,
    /// status.
    fn lastrun(&self, machine: &str) -> String {
        self.hotfixes
            .iter()
            .map(|h| {
                let q = h
                    .files
                    .first()
                    .map(|(n, _)| n.split(['_', '.']).next().unwrap_or("").to_string())
                    .unwrap_or_default();
                format!(
                    "{machine}\tWindows 2000 Server\t{}\t{}\t{q}\thttp://www.microsoft.com/technet/security/bulletin/{}.asp\tFile version is less than expected.\t\tPatch NOT Found\r\n",
                    h.bulletin, h.title, h.bulletin
                )
            })
            .collect()
    }

    /// HIVE's generated install script: each hiveexec.cmd from the share, Qchain when more than
    /// one, then the reboot.
    fn install_script(&self) -> String {
        let mut s = String::from("@echo off\r\n");
        for h in &self.hotfixes {
            s.push_str(&format!(
                "pushd {}\\HotFixes\\{}\r\ncall hiveexec.cmd\r\npopd\r\n",
                self.share, h.bulletin
            ));
        }
        if self.hotfixes.len() > 1 {
            s.push_str(&format!("{}\\Tools\\qchain.exe\r\n", self.share));
        }
        s.push_str("shutdown -r -t 30\r\n");
        s
    }
}

/// 02:00 UTC of a `YYYY-MM-DD` day.
fn day_start(day: &str) -> io::Result<std::time::SystemTime> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{day}` is not YYYY-MM-DD"),
        )
    };
    let parts: Vec<i64> = day
        .split('-')
        .map(|p| p.parse::<i64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [y, m, d] = parts[..] else {
        return Err(bad());
    };
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + 7_200).map_err(|_| bad())?;
    Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}
