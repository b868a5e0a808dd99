//! A command line sent whole in quotes, as the Ruby WinRM library (Vagrant, Chef, Test Kitchen)
//! sends every command: WinRS hands it to `cmd.exe /c`, whose outer-quote rule strips the quotes,
//! so it runs exactly as the unquoted line would.

mod model_support;

use model_support::{BASIC, fleet, run, text};

#[tokio::test]
async fn a_quoted_line_runs_as_cmd_c_runs_it() {
    let f = fleet(BASIC);
    let host = f.host("WS01");

    let plain = run(
        &host,
        r#"reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v CurrentBuildNumber"#,
    )
    .await;
    let quoted = run(
        &host,
        r#""reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" /v CurrentBuildNumber""#,
    )
    .await;
    assert_eq!(plain.exit_code, 0, "{}", text(&plain.stderr));
    assert!(
        text(&plain.stdout).contains("17763"),
        "{}",
        text(&plain.stdout)
    );
    assert_eq!(quoted, plain);

    let name = run(&host, r#""hostname""#).await;
    assert_eq!(text(&name.stdout), "WS01\r\n");
    assert_eq!(name.exit_code, 0);

    let chained = run(&host, r#""hostname & exit 3""#).await;
    assert_eq!(text(&chained.stdout), "WS01\r\n");
    assert_eq!(chained.exit_code, 3);
}

#[tokio::test]
async fn an_empty_quoted_line_does_nothing_and_succeeds() {
    let f = fleet(BASIC);
    let out = run(&f.host("WS01"), r#""""#).await;
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
}

#[tokio::test]
async fn a_program_name_is_never_the_quoted_line_itself() {
    let f = fleet(BASIC);
    let host = f.host("WS01");
    let listed = run(&host, r#""tasklist /FO CSV /NH""#).await;
    assert_eq!(listed.exit_code, 0, "{}", text(&listed.stderr));
    let listed = text(&listed.stdout);
    assert!(listed.contains("\"tasklist.exe\","), "{listed}");
    assert!(
        !listed.contains('\u{5c}') && !listed.contains("\"\"tasklist"),
        "{listed}"
    );

    let unknown = run(&host, r#""notathing /x""#).await;
    assert_eq!(unknown.exit_code, 9009);
    assert!(
        text(&unknown.stderr).starts_with("'notathing' is not recognized"),
        "{}",
        text(&unknown.stderr)
    );
}
