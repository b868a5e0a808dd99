//! Authentication once the keys are exchanged: a password, one private key, or each key an SSH
//! agent holds. A refusal says what to change: the password, or which public key (by the
//! fingerprint `ssh-keygen -l` prints) the account must list in its authorized keys.

use std::path::Path;
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use crate::endpoint::{Auth, SshEndpoint};
use crate::error::SshError;
use crate::session::{PinnedHostKey, protocol};

/// Where a Windows OpenSSH server looks for the keys of an account, in the words of its docs.
const AUTHORIZED_KEYS_HINT: &str = "add it to the account's ~/.ssh/authorized_keys (on Windows \
     OpenSSH, C:\\ProgramData\\ssh\\administrators_authorized_keys for a member of \
     Administrators), or use a key that is listed there";

pub(crate) async fn authenticate(
    handle: &mut Handle<PinnedHostKey>,
    target: &SshEndpoint,
    label: &str,
) -> Result<(), SshError> {
    let user = target.user.as_str();
    let refused = |fix: String| SshError::AuthRefused {
        host: label.to_owned(),
        user: target.user.clone(),
        method: target.auth.method(),
        fix,
    };
    match &target.auth {
        Auth::Password(password) => {
            let result = handle
                .authenticate_password(user, password.expose())
                .await
                .map_err(|e| protocol(label, "authenticating", e))?;
            match result {
                AuthResult::Success => Ok(()),
                AuthResult::Failure { .. } => Err(refused(
                    "check the password the credential gives and that the account may log on \
                     over SSH"
                        .to_owned(),
                )),
            }
        }
        Auth::KeyFile { path, passphrase } => {
            let key = russh::keys::load_secret_key(path, passphrase.as_ref().map(|p| p.expose()))
                .map_err(|source| key_error(label, path, source))?;
            with_key(handle, user, key, label).await?.map_err(refused)
        }
        Auth::Key { text, origin } => {
            let key = russh::keys::decode_secret_key(text.expose(), None)
                .map_err(|source| key_error(label, origin, source))?;
            with_key(handle, user, key, label).await?.map_err(refused)
        }
        Auth::Agent { socket } => with_agent(handle, user, socket, label)
            .await?
            .map_err(refused),
    }
}

fn key_error(label: &str, path: &Path, source: russh::keys::Error) -> SshError {
    SshError::KeyFile {
        host: label.to_owned(),
        path: path.to_owned(),
        source: Box::new(source),
    }
}

/// The fingerprint and type of a public key, as `ssh-keygen -l -E sha256` names it.
fn describe(key: &PublicKey) -> String {
    format!(
        "{} {}",
        key.algorithm().as_str(),
        key.fingerprint(HashAlg::Sha256)
    )
}

/// The hash an RSA signature uses: the best SHA-2 the server accepts (`None` for other keys, and
/// for a server that announces nothing, which then gets `ssh-rsa` with SHA-1).
async fn rsa_hash(
    handle: &Handle<PinnedHostKey>,
    key: &PublicKey,
    label: &str,
) -> Result<Option<HashAlg>, SshError> {
    if !key.algorithm().is_rsa() {
        return Ok(None);
    }
    Ok(handle
        .best_supported_rsa_hash()
        .await
        .map_err(|e| protocol(label, "authenticating", e))?
        .flatten())
}

/// Logs on with one private key. `Ok(Err(fix))` when the server refuses it.
async fn with_key(
    handle: &mut Handle<PinnedHostKey>,
    user: &str,
    key: PrivateKey,
    label: &str,
) -> Result<Result<(), String>, SshError> {
    let public = key.public_key().clone();
    let hash = rsa_hash(handle, &public, label).await?;
    let result = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await
        .map_err(|e| protocol(label, "authenticating", e))?;
    Ok(match result {
        AuthResult::Success => Ok(()),
        AuthResult::Failure { .. } => Err(format!(
            "the server does not accept the key {}: {AUTHORIZED_KEYS_HINT}",
            describe(&public)
        )),
    })
}

/// Logs on with the keys an SSH agent holds, one after the other, as OpenSSH's `ssh` does.
/// `Ok(Err(fix))` when the server refuses every one.
async fn with_agent(
    handle: &mut Handle<PinnedHostKey>,
    user: &str,
    socket: &Path,
    label: &str,
) -> Result<Result<(), String>, SshError> {
    let agent_error = |message: String| SshError::Agent {
        host: label.to_owned(),
        socket: socket.to_owned(),
        message,
    };
    let mut agent = AgentClient::connect_uds(socket).await.map_err(|e| {
        agent_error(format!(
            "cannot connect ({e}): start ssh-agent and set SSH_AUTH_SOCK to its socket"
        ))
    })?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| agent_error(format!("cannot list its keys: {e}")))?;
    let keys: Vec<PublicKey> = identities
        .into_iter()
        .map(|id| match id {
            AgentIdentity::PublicKey { key, .. } => key,
            // hive logs on with keys; an OpenSSH certificate's key is also offered plainly.
            AgentIdentity::Certificate { certificate, .. } => {
                PublicKey::from(certificate.public_key().clone())
            }
        })
        .collect();
    if keys.is_empty() {
        return Err(agent_error(
            "the agent holds no key: add one with `ssh-add KEYFILE`".to_owned(),
        ));
    }
    for key in &keys {
        let hash = rsa_hash(handle, key, label).await?;
        let result = handle
            .authenticate_publickey_with(user, key.clone(), hash, &mut agent)
            .await
            .map_err(|e| agent_error(format!("signing with {} failed: {e}", describe(key))))?;
        if let AuthResult::Success = result {
            return Ok(Ok(()));
        }
    }
    let tried: Vec<String> = keys.iter().map(describe).collect();
    Ok(Err(format!(
        "the server accepts none of the agent's keys ({}): {AUTHORIZED_KEYS_HINT}",
        tried.join(", ")
    )))
}
