//! Running without root (issue 7): with `[privileges] user = "petrel"`, petrel started as root
//! binds its listeners (ports 25, 465, 587 need root or CAP_NET_BIND_SERVICE), reads its
//! certificates and keys, gives `data_dir` to the user, and then drops to that user and group
//! for good (supplementary groups cleared, then setgid, then setuid; a check that root cannot
//! be regained). Started as that user already (systemd's `User=`), it just goes on.
//!
//! The only module that changes the process's identity; errors are sentences for the operator.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User, geteuid, setgid, setgroups, setuid};

/// The identity to run as.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: String,
    uid: Uid,
    gid: Gid,
}

/// Looks up `user` (and `group`, else the user's own group).
///
/// # Errors
/// An unknown user or group; a `user` other than the current one when not started as root.
pub fn resolve(user: &str, group: Option<&str>) -> Result<Option<Identity>, String> {
    let account = User::from_name(user)
        .map_err(|e| format!("privileges.user: cannot look up {user:?}: {e}"))?
        .ok_or_else(|| format!("privileges.user: there is no user {user:?} (create it with `useradd --system {user}`)"))?;
    let gid = match group {
        Some(name) => {
            Group::from_name(name)
                .map_err(|e| format!("privileges.group: cannot look up {name:?}: {e}"))?
                .ok_or_else(|| format!("privileges.group: there is no group {name:?}"))?
                .gid
        }
        None => account.gid,
    };
    let current = geteuid();
    if current == account.uid {
        return Ok(None);
    }
    if !current.is_root() {
        return Err(format!(
            "privileges.user = {user:?}, but petrel runs as uid {current}: start it as root (it binds its ports, then becomes {user}) or as {user} itself"
        ));
    }
    Ok(Some(Identity {
        user: user.to_owned(),
        uid: account.uid,
        gid,
    }))
}

/// Makes `data_dir` (created if missing) and everything in it belong to the identity, so the
/// unprivileged process can use it; only walks the tree when its top is owned by someone else.
///
/// # Errors
/// When a file cannot be given to the user.
pub fn give_data_dir(identity: &Identity, data_dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data_dir {}: {e}", data_dir.display()))?;
    let metadata = std::fs::metadata(data_dir)
        .map_err(|e| format!("cannot read data_dir {}: {e}", data_dir.display()))?;
    if metadata.uid() == identity.uid.as_raw() && metadata.gid() == identity.gid.as_raw() {
        return Ok(());
    }
    chown_tree(identity, data_dir)
}

fn chown_tree(identity: &Identity, path: &Path) -> Result<(), String> {
    std::os::unix::fs::lchown(
        path,
        Some(identity.uid.as_raw()),
        Some(identity.gid.as_raw()),
    )
    .map_err(|e| format!("cannot give {} to {}: {e}", path.display(), identity.user))?;
    let metadata = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if metadata.is_dir() {
        let entries =
            std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for entry in entries.flatten() {
            chown_tree(identity, &entry.path())?;
        }
    }
    Ok(())
}

/// Becomes the identity for good.
///
/// # Errors
/// When the kernel refuses a step, or root could still be regained afterwards.
pub fn drop_to(identity: &Identity) -> Result<(), String> {
    let failed = |step: &str, e: nix::Error| {
        format!("cannot drop privileges to {} ({step}): {e}", identity.user)
    };
    setgroups(&[identity.gid]).map_err(|e| failed("setgroups", e))?;
    setgid(identity.gid).map_err(|e| failed("setgid", e))?;
    setuid(identity.uid).map_err(|e| failed("setuid", e))?;
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err(format!(
            "dropped to {} but could become root again; refusing to run",
            identity.user
        ));
    }
    Ok(())
}
