//! Image garbage collection: per funko, keep the images in use and the one before them (for a
//! quick roll back); remove the rest, and what interrupted builds left behind.

use std::collections::{BTreeMap, BTreeSet};

/// One image faaso built, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The image id.
    pub id: String,
    /// Its `repo:tag` references (none for a dangling one).
    pub tags: Vec<String>,
    /// The funko label.
    pub funko: String,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

/// The ids of the images to remove: every dangling image, and per funko every tagged image that
/// is neither in `keep` nor the newest of the others.
pub fn images_to_remove(images: &[BuiltImage], keep: &BTreeSet<String>) -> Vec<String> {
    let mut remove = Vec::new();
    let mut by_funko: BTreeMap<&str, Vec<&BuiltImage>> = BTreeMap::new();
    for image in images {
        let tagged: Vec<&String> = image
            .tags
            .iter()
            .filter(|t| *t != "<none>:<none>")
            .collect();
        if tagged.is_empty() {
            remove.push(image.id.clone());
        } else {
            by_funko.entry(&image.funko).or_default().push(image);
        }
    }
    for images in by_funko.values_mut() {
        images.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        let mut previous_kept = false;
        for image in images.iter() {
            if image.tags.iter().any(|t| keep.contains(t)) {
                continue;
            }
            if !previous_kept {
                previous_kept = true;
                continue;
            }
            remove.push(image.id.clone());
        }
    }
    remove.sort();
    remove
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tag: Option<&str>, funko: &str, created: i64) -> BuiltImage {
        BuiltImage {
            id: id.into(),
            tags: tag.map(|t| vec![t.to_owned()]).unwrap_or_default(),
            funko: funko.into(),
            created,
        }
    }

    #[test]
    fn keeps_what_is_used_and_one_previous_per_funko() {
        let images = [
            image("a1", Some("f-a:1"), "a", 1),
            image("a2", Some("f-a:2"), "a", 2),
            image("a3", Some("f-a:3"), "a", 3),
            image("a4", Some("f-a:4"), "a", 4),
            image("b1", Some("f-b:1"), "b", 1),
            image("dangling", None, "a", 5),
        ];
        let keep = BTreeSet::from(["f-a:4".to_owned(), "f-b:1".to_owned()]);
        assert_eq!(
            images_to_remove(&images, &keep),
            vec!["a1", "a2", "dangling"]
        );
    }

    #[test]
    fn nothing_in_use_still_keeps_the_newest() {
        let images = [
            image("a1", Some("f-a:1"), "a", 1),
            image("a2", Some("f-a:2"), "a", 2),
        ];
        assert_eq!(images_to_remove(&images, &BTreeSet::new()), vec!["a1"]);
    }
}
