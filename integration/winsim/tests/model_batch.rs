//! An administrator's `hiveexec.cmd`, run the way hive runs it: `cd /d <staged folder> && cmd /c
//! hiveexec.cmd`, its lines calling the hotfix beside it by name.

mod model_support;

use model_support::{fleet, run, text};
use winsim::installer::Package;

const FLEET: &str = r#"
[[host]]
name = "W2K01"
address = "127.0.2.1"
product = "Microsoft Windows 2000"
csd_version = "Service Pack 1"
version = "5.0.2195"
"#;

const DIR: &str = r"C:\Windows\Temp\hive\r1\MS01-033";

#[tokio::test]
async fn hiveexec_runs_from_its_folder_and_returns_the_installers_exit_code() {
    let f = fleet(FLEET);
    let host = f.host("W2K01");
    std::fs::create_dir_all(host.host_path(DIR)).unwrap();
    Package::hotfix("Q300972")
        .exit_code(3010)
        .write_to(&host.host_path(&format!(r"{DIR}\Q300972_W2K_SP3_x86_en.exe")))
        .unwrap();
    std::fs::write(
        host.host_path(&format!(r"{DIR}\hiveexec.cmd")),
        "@echo off\r\nrem MS01-033\r\nQ300972_W2K_SP3_x86_en.exe -z -q -m\r\n\
         if errorlevel 1 exit /b %errorlevel%\r\necho not reached\r\n",
    )
    .unwrap();
    let out = run(&host, &format!(r"cd /d {DIR} && cmd /c hiveexec.cmd")).await;
    assert_eq!(out.exit_code, 3010, "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("not reached"));
    assert!(host.installed_kbs().contains(&"Q300972".to_string()));

    // Without the cd, the script is not in the profile folder cmd.exe starts in.
    let out = run(&host, "cmd /c hiveexec.cmd").await;
    assert_eq!(out.exit_code, 9009);
    let out = run(&host, r"cd /d C:\no\such\folder && cmd /c hiveexec.cmd").await;
    assert_eq!(out.exit_code, 1);
    assert!(text(&out.stderr).contains("cannot find the path"));
}

#[tokio::test]
async fn a_script_line_the_interpreter_does_not_simulate_fails_loudly() {
    let f = fleet(FLEET);
    let host = f.host("W2K01");
    std::fs::create_dir_all(host.host_path(DIR)).unwrap();
    std::fs::write(
        host.host_path(&format!(r"{DIR}\hiveexec.cmd")),
        "%~dp0missing.exe -z -q -m\r\n",
    )
    .unwrap();
    let out = run(&host, &format!(r"cd /d {DIR} && cmd /c hiveexec.cmd")).await;
    assert_eq!(out.exit_code, 9009, "{}", text(&out.stderr));
}
