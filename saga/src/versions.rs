//! Every version of one saga a process knows. New sagas start under the latest; a saga already
//! in flight finishes under the version it started with, so a deploy that adds a step leaves
//! the sagas of the old version alone.

use std::{collections::BTreeMap, sync::Arc};

use crate::Definition;

/// The versions of one saga, by number.
#[derive(Clone, Debug)]
pub struct Versions {
    by_number: BTreeMap<u32, Arc<Definition>>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionsError {
    #[error("no saga definition given")]
    Empty,
    #[error("saga {0} v{1} is given twice")]
    Duplicate(String, u32),
    #[error("versions of one saga must share its name: {0} and {1}")]
    OtherSaga(String, String),
}

impl Versions {
    pub fn new(definitions: impl IntoIterator<Item = Definition>) -> Result<Self, VersionsError> {
        let mut by_number = BTreeMap::new();
        let mut name: Option<String> = None;
        for definition in definitions {
            match &name {
                Some(name) if *name != definition.name => {
                    return Err(VersionsError::OtherSaga(name.clone(), definition.name));
                }
                Some(_) => {}
                None => name = Some(definition.name.clone()),
            }
            let version = definition.version;
            if by_number.insert(version, Arc::new(definition)).is_some() {
                return Err(VersionsError::Duplicate(name.unwrap_or_default(), version));
            }
        }
        if by_number.is_empty() {
            return Err(VersionsError::Empty);
        }
        Ok(Self { by_number })
    }

    /// The version new sagas start under.
    pub fn latest(&self) -> &Arc<Definition> {
        self.by_number
            .values()
            .next_back()
            .expect("Versions::new refuses an empty set")
    }

    pub fn get(&self, version: u32) -> Option<&Arc<Definition>> {
        self.by_number.get(&version)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Definition>> {
        self.by_number.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(name: &str, number: u32) -> Definition {
        Definition::named(name, number)
            .trigger_topic("asks")
            .step("only")
            .by("someone")
            .reports_to("answers")
            .starts_on("Asked")
            .succeeds_on("Done")
            .compensated_by("/a.B/Undo")
            .build()
            .unwrap()
    }

    #[test]
    fn new_sagas_take_the_latest_and_old_ones_keep_theirs() {
        let versions = Versions::new([version("x", 2), version("x", 1)]).unwrap();
        assert_eq!(versions.latest().version(), 2);
        assert_eq!(versions.get(1).map(|d| d.version()), Some(1));
        assert!(versions.get(3).is_none());
    }

    #[test]
    fn one_saga_each_version_once() {
        assert_eq!(
            Versions::new([version("x", 1), version("x", 1)]).unwrap_err(),
            VersionsError::Duplicate("x".into(), 1)
        );
        assert!(matches!(
            Versions::new([version("x", 1), version("y", 2)]),
            Err(VersionsError::OtherSaga(..))
        ));
        assert_eq!(Versions::new([]).unwrap_err(), VersionsError::Empty);
    }
}
