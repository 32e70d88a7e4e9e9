//! Finding one camera, adapter or user by what a person types: its id, else its name in any case.
use crate::{Client, Error, Result, pb};

/// The one of `items` whose id is `wanted` exactly, else the one whose name is `wanted` in any
/// case: [`Error::NotFound`] when none is, [`Error::Ambiguous`] when several names are.
pub fn by_id_or_name<T>(
    kind: &'static str,
    wanted: &str,
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
    name: impl Fn(&T) -> &str,
) -> Result<T> {
    let (mut with_id, others): (Vec<T>, Vec<T>) = items.into_iter().partition(|t| id(t) == wanted);
    if let Some(found) = with_id.pop() {
        return Ok(found);
    }
    let folded = wanted.to_lowercase();
    let mut named: Vec<T> = others.into_iter().filter(|t| name(t).to_lowercase() == folded).collect();
    match named.len() {
        0 => Err(Error::NotFound { kind, wanted: wanted.to_owned() }),
        1 => named.pop().ok_or(Error::NotFound { kind, wanted: wanted.to_owned() }),
        _ => Err(Error::Ambiguous {
            kind,
            wanted: wanted.to_owned(),
            ids: named.iter().map(|t| id(t).to_owned()).collect(),
        }),
    }
}

impl Client {
    /// The camera (of those the caller may see) with this id, else with this name in any case.
    pub async fn find_camera(&self, id_or_name: &str) -> Result<pb::Camera> {
        let cameras = self.all_cameras(pb::ListCamerasRequest::default()).await?;
        by_id_or_name("camera", id_or_name, cameras, |c| &c.id, |c| &c.name)
    }

    /// The inference adapter with this id, else with this name in any case.
    pub async fn find_adapter(&self, id_or_name: &str) -> Result<pb::Adapter> {
        let adapters = self.all_adapters(pb::ListAdaptersRequest::default()).await?;
        by_id_or_name("adapter", id_or_name, adapters, |a| &a.id, |a| &a.name)
    }

    /// The user with this id, else with this username in any case.
    pub async fn find_user(&self, id_or_name: &str) -> Result<pb::User> {
        let users = self.all_users(pb::ListUsersRequest::default()).await?;
        by_id_or_name("user", id_or_name, users, |u| &u.id, |u| &u.username)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn named(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(id, name)| (id.to_string(), name.to_string())).collect()
    }

    fn find(wanted: &str, items: Vec<(String, String)>) -> Result<(String, String)> {
        by_id_or_name("camera", wanted, items, |t| &t.0, |t| &t.1)
    }

    #[test]
    fn an_id_wins_over_a_name() {
        let found = find("b", named(&[("a", "B"), ("b", "Dock")])).unwrap();
        assert_eq!(found.0, "b");
    }

    #[test]
    fn a_name_matches_in_any_case() {
        assert_eq!(find("dOCK", named(&[("a", "Gate"), ("b", "Dock")])).unwrap().0, "b");
    }

    #[test]
    fn names_differing_only_in_case_are_ambiguous() {
        let e = find("dock", named(&[("a", "Dock"), ("b", "DOCK")])).unwrap_err();
        assert!(matches!(&e, Error::Ambiguous { ids, .. } if ids == &["a", "b"]), "{e:?}");
    }

    #[test]
    fn nothing_matching_is_not_found_and_says_what_was_wanted() {
        let e = find("Yard", named(&[("a", "Dock")])).unwrap_err();
        assert!(matches!(&e, Error::NotFound { kind: "camera", wanted } if wanted == "Yard"), "{e:?}");
        assert!(e.to_string().contains("\"Yard\""), "{e}");
    }
}
