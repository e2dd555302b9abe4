// Orderly's patch (this file): a group's state is written to storage when it changes, not on
// every heartbeat.
//
// tansu wrote a group's whole state for each heartbeat and each offset commit (on SQLite a
// transaction and an fsync), though neither changes it but for the members' time of last
// contact: an idle consumer group cost its broker a durable write every heartbeat interval, the
// largest part of an idle broker's work. Kafka keeps liveness in memory and writes a group's
// metadata when it rebalances. Here a heartbeat or an offset commit that leaves the state as
// this broker last wrote it, last contacts aside, skips the write while that write is younger
// than half the group's session timeout.
//
// The coordinator works optimistically: an operation takes the group's state out of its map,
// and one that finds it gone (another is under way) reads the group from storage and writes
// on condition that storage has not moved. A skipped write must not undo that: it skips only
// while storage is still at the version the operation started from (every write this broker
// makes is noted here) and nobody has put a state back in the map meanwhile. And a state read
// back from storage gets the newest last contact this broker saw for each member, so a member
// is never judged by a contact that a skipped write left unwritten.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use tansu_storage::{GroupDetail, Version};

/// What this broker last wrote for each group, and the newest contact it saw from each member.
#[derive(Clone, Debug, Default)]
pub(crate) struct Persisted(Arc<Mutex<BTreeMap<String, Group>>>);

#[derive(Debug, Default)]
struct Group {
    written: Option<Written>,
    contacts: BTreeMap<String, SystemTime>,
}

#[derive(Debug)]
struct Written {
    version: Version,
    /// The state written, last contacts cleared.
    detail: GroupDetail,
    at: SystemTime,
}

impl Persisted {
    /// Whether `detail` may go unwritten: storage is at `version`, which this broker wrote less
    /// than half a session ago with the same state, last contacts aside.
    pub(crate) fn is_current(
        &self,
        group_id: &str,
        version: Option<&Version>,
        detail: &GroupDetail,
        now: SystemTime,
    ) -> bool {
        let (Some(version), Ok(groups)) = (version, self.0.lock()) else {
            return false;
        };
        let written = groups
            .get(group_id)
            .and_then(|group| group.written.as_ref());
        written.is_some_and(|written| {
            &written.version == version
                && now
                    .duration_since(written.at)
                    .is_ok_and(|age| age < contact_refresh(detail))
                && written.detail == without_contacts(detail)
        })
    }

    /// Notes that storage is at `version`, holding `detail`, written at `now`.
    pub(crate) fn wrote(
        &self,
        group_id: &str,
        version: &Version,
        detail: &GroupDetail,
        now: SystemTime,
    ) {
        self.saw(group_id, detail);
        if let Ok(mut groups) = self.0.lock() {
            groups.entry(group_id.to_owned()).or_default().written = Some(Written {
                version: version.clone(),
                detail: without_contacts(detail),
                at: now,
            });
        }
    }

    /// Notes the members' last contacts in `detail`, written or not.
    pub(crate) fn saw(&self, group_id: &str, detail: &GroupDetail) {
        let Ok(mut groups) = self.0.lock() else {
            return;
        };
        let group = groups.entry(group_id.to_owned()).or_default();
        group
            .contacts
            .retain(|member, _| detail.members.contains_key(member));
        for (member, state) in &detail.members {
            if let Some(contact) = state.last_contact {
                let newest = group.contacts.entry(member.clone()).or_insert(contact);
                *newest = (*newest).max(contact);
            }
        }
    }

    /// `detail` as read from storage, each member's last contact the newest this broker saw.
    pub(crate) fn loaded(&self, group_id: &str, mut detail: GroupDetail) -> GroupDetail {
        if let Ok(groups) = self.0.lock()
            && let Some(group) = groups.get(group_id)
        {
            for (member, state) in &mut detail.members {
                if let Some(&seen) = group.contacts.get(member) {
                    state.last_contact = state.last_contact.max(Some(seen));
                }
            }
        }
        detail
    }
}

/// How stale storage may let a member's last contact grow: half the session timeout.
fn contact_refresh(detail: &GroupDetail) -> Duration {
    Duration::from_millis(u64::try_from(detail.session_timeout_ms).unwrap_or_default() / 2)
}

fn without_contacts(detail: &GroupDetail) -> GroupDetail {
    let mut detail = detail.clone();
    for member in detail.members.values_mut() {
        member.last_contact = None;
    }
    detail
}
