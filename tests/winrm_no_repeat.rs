//! A request whose connection dies before the reply is sent again only when repeating it is
//! harmless. A Command may already have started an installer on the host: hive reports the lost
//! connection instead of starting it a second time. A Receive (reading output) is resent.
//!
//! Runs against the simulated fleet (winsim) with wire faults from its fleet file; no other
//! server is needed.

use std::path::Path;
use std::time::Duration;

use hive::inventory::{Inventory, Secret};
use hive::remote::{Command, Connector as _, NetworkConnector, Timeouts};

const PASSWORD: &str = "NoRepeat-Passw0rd!";

fn octet() -> u32 {
    100 + std::process::id() % 100
}

fn fleet_toml() -> String {
    let o = octet();
    format!(
        "[defaults]\nuser = \"Administrator\"\npassword = \"{PASSWORD}\"\n\n\
         [template.ws]\nproduct = \"Windows Server 2019 Datacenter\"\nedition = \"ServerDatacenter\"\n\
         version = \"10.0.17763\"\nubr = 5458\nmachine = \"amd64\"\n\n\
         [[host]]\nname = \"CMDRESET\"\naddress = \"127.89.{o}.1\"\ntemplate = \"ws\"\n\
         [[host.faults.wire]]\nkind = \"reset\"\nop = \"Command\"\nnth = 2\ntimes = 1\n\n\
         [[host]]\nname = \"RCVRESET\"\naddress = \"127.89.{o}.2\"\ntemplate = \"ws\"\n\
         [[host.faults.wire]]\nkind = \"reset\"\nop = \"Receive\"\nnth = 2\ntimes = 1\n"
    )
}

fn runs_of(fleet: &winsim::Fleet, host: &str, line: &str) -> usize {
    fleet
        .host(host)
        .expect("host in the fleet")
        .command_log()
        .iter()
        .filter(|r| r.command_line.contains(line))
        .count()
}

#[tokio::test]
async fn a_command_is_never_resent_and_a_receive_is() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fleet.toml"), fleet_toml()).unwrap();
    let fleet =
        winsim::Fleet::from_file(&dir.path().join("fleet.toml"), &dir.path().join("drives"))
            .unwrap();
    let servers = winsim::server::WinrmFleet::start(fleet.sim_hosts(), Default::default())
        .await
        .unwrap();
    let port = servers.endpoints()[0].http_port().expect("endpoint port");
    let o = octet();
    let inv = Inventory::parse(
        &format!(
            "[defaults]\ncredential = \"prompt\"\n\
             [[host]]\nname = \"CMDRESET\"\naddress = \"127.89.{o}.1\"\nport = {port}\n\
             [[host]]\nname = \"RCVRESET\"\naddress = \"127.89.{o}.2\"\nport = {port}\n"
        ),
        Path::new("no-repeat.toml"),
    )
    .unwrap();
    let secret = Secret::new(PASSWORD);
    let timeouts = Timeouts {
        connect: Duration::from_secs(5),
        operation: Duration::from_secs(10),
    };
    let run = |line: &str| Command::Cmd(line.to_string());
    let limit = Duration::from_secs(20);

    // CMDRESET: the second Command's connection is reset before any reply.
    let mut target = NetworkConnector::new(timeouts)
        .open(&inv.hosts[0], &secret)
        .unwrap();
    let first = target
        .exec(&run("echo first-command"), limit)
        .await
        .unwrap();
    assert_eq!(first.exit_code, 0);
    let err = target
        .exec(&run("echo second-command"), limit)
        .await
        .expect_err("a Command whose connection died must not be sent again");
    let text = err.to_string();
    assert!(
        text.contains("CMDRESET") || text.contains(&format!("127.89.{o}.1")),
        "{text}"
    );
    assert!(text.contains("not repeated"), "{text}");
    assert_eq!(runs_of(&fleet, "CMDRESET", "second-command"), 0);
    // The host is fine: the next command goes out on a new connection.
    let third = target
        .exec(&run("echo third-command"), limit)
        .await
        .unwrap();
    assert_eq!(third.exit_code, 0);
    assert_eq!(runs_of(&fleet, "CMDRESET", "third-command"), 1);

    // RCVRESET: the second command's Receive is reset; the Receive is resent and the command,
    // started once, is read to its end.
    let mut target = NetworkConnector::new(timeouts)
        .open(&inv.hosts[1], &secret)
        .unwrap();
    target.exec(&run("echo one"), limit).await.unwrap();
    let out = target.exec(&run("echo two"), limit).await.unwrap();
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout.contains("two"), "{out:?}");
    assert_eq!(runs_of(&fleet, "RCVRESET", "echo two"), 1);

    servers.shutdown().await;
}
