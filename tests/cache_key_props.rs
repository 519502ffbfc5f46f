//! Properties of the cache key framing and of the context digest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use mcpod::cache::{CacheKey, ContextDigest, KeyInputs, hash_context};
use proptest::prelude::*;

/// The inputs of a key, owned, with every field a plain string.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Flat {
    containerfile: String,
    args: Vec<(String, String)>,
    labels: Vec<(String, String)>,
    bases: Vec<(String, String)>,
}

impl Flat {
    fn key(&self, context: &ContextDigest) -> CacheKey {
        let args: BTreeMap<String, String> = self.args.iter().cloned().collect();
        let labels: BTreeMap<String, String> = self.labels.iter().cloned().collect();
        CacheKey::compute(&KeyInputs {
            containerfile: self.containerfile.as_bytes(),
            build_args: &args,
            labels: &labels,
            base_images: &self.bases,
            context,
            network: false,
        })
    }

    /// The fields in the order they are hashed, as one list of strings.
    fn fields(&self) -> Vec<String> {
        let mut out = vec![self.containerfile.clone()];
        for list in [&self.args, &self.labels, &self.bases] {
            for (a, b) in list {
                out.push(a.clone());
                out.push(b.clone());
            }
        }
        out
    }

    fn with_fields(&self, fields: &[String]) -> Flat {
        let mut it = fields.iter().cloned();
        let mut next = || it.next().unwrap_or_default();
        let containerfile = next();
        let mut take = |n: usize| (0..n).map(|_| (next(), next())).collect::<Vec<_>>();
        let args = take(self.args.len());
        let labels = take(self.labels.len());
        let bases = take(self.bases.len());
        Flat {
            containerfile,
            args,
            labels,
            bases,
        }
    }

    /// Two maps cannot hold one key twice: a flat form that would collapse
    /// entries does not describe the same kind of input.
    fn keys_unique(&self) -> bool {
        let unique = |l: &[(String, String)]| {
            l.iter().map(|(k, _)| k).collect::<BTreeSet<_>>().len() == l.len()
        };
        unique(&self.args) && unique(&self.labels)
    }
}

fn text() -> impl Strategy<Value = String> {
    "[a-c=/ ]{0,6}"
}

fn pairs(max: usize) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((text(), text()), 0..=max)
}

fn flat() -> impl Strategy<Value = Flat> {
    (text(), pairs(3), pairs(3), pairs(2))
        .prop_map(|(containerfile, args, labels, bases)| Flat {
            containerfile,
            args,
            labels,
            bases,
        })
        .prop_filter("map keys are unique", Flat::keys_unique)
}

/// Move `shift` bytes across the boundary between field `at` and field `at + 1`
/// (to the right when positive). None when the shift does not fit.
fn shift_boundary(fields: &[String], at: usize, shift: i32) -> Option<Vec<String>> {
    let mut out = fields.to_vec();
    let (left, right) = (&fields[at], &fields[at + 1]);
    if shift >= 0 {
        let n = shift as usize;
        let cut = left.len().checked_sub(n)?;
        out[at] = left[..cut].to_string();
        out[at + 1] = format!("{}{}", &left[cut..], right);
    } else {
        let n = shift.unsigned_abs() as usize;
        if n > right.len() {
            return None;
        }
        out[at] = format!("{}{}", left, &right[..n]);
        out[at + 1] = right[n..].to_string();
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Moving bytes between any two adjacent fields (containerfile and first
    /// arg, an arg's key and value, the last arg and the first label, a
    /// label's key and value, a base reference and its ID, ...) never gives
    /// the same key, even though the concatenated bytes are identical.
    #[test]
    fn moving_bytes_between_adjacent_fields_changes_the_key(
        input in flat(),
        at_seed in any::<usize>(),
        shift in -6i32..=6,
    ) {
        let context = ContextDigest::default();
        let fields = input.fields();
        prop_assume!(fields.len() >= 2);
        let at = at_seed % (fields.len() - 1);
        let moved = shift_boundary(&fields, at, shift);
        prop_assume!(moved.is_some());
        let moved = moved.unwrap_or_default();
        prop_assume!(moved != fields);
        let other = input.with_fields(&moved);
        prop_assume!(other.keys_unique());
        prop_assert_eq!(other.fields().concat(), fields.concat());
        prop_assert_ne!(input.key(&context), other.key(&context));
    }

    /// An arg key/value split, directly.
    #[test]
    fn arg_key_value_boundary(k in "[a-z]{0,8}", v in "[a-z]{0,8}", split in 0usize..=16) {
        let joined = format!("{k}{v}");
        let (k2, v2) = joined.split_at(split.min(joined.len()));
        prop_assume!((k2, v2) != (k.as_str(), v.as_str()));
        let context = ContextDigest::default();
        let one = |k: &str, v: &str| Flat {
            containerfile: String::new(),
            args: vec![(k.to_string(), v.to_string())],
            labels: vec![],
            bases: vec![],
        };
        prop_assert_ne!(one(&k, &v).key(&context), one(k2, v2).key(&context));
    }

    /// The same entries as build args or as labels, or split between them.
    #[test]
    fn entries_cannot_move_between_args_and_labels(entries in pairs(4), split in 0usize..=4) {
        let context = ContextDigest::default();
        let mut seen = BTreeSet::new();
        let entries: Vec<_> = entries.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
        let split = split.min(entries.len());
        let a = Flat { containerfile: String::new(), args: entries.clone(), labels: vec![], bases: vec![] };
        let b = Flat {
            containerfile: String::new(),
            args: entries[..split].to_vec(),
            labels: entries[split..].to_vec(),
            bases: vec![],
        };
        prop_assume!(a != b);
        prop_assert_ne!(a.key(&context), b.key(&context));
    }

    /// Any difference in inputs, a different key (a sanity check of the
    /// whole pipeline, including the context digest).
    #[test]
    fn different_inputs_different_keys(a in flat(), b in flat(), da in any::<[u8; 32]>(), db in any::<[u8; 32]>()) {
        let ca = ContextDigest { digest: da, ..ContextDigest::default() };
        let cb = ContextDigest { digest: db, ..ContextDigest::default() };
        let same_maps = |x: &Flat, y: &Flat| {
            let m = |l: &[(String, String)]| l.iter().cloned().collect::<BTreeMap<_, _>>();
            x.containerfile == y.containerfile
                && m(&x.args) == m(&y.args)
                && m(&x.labels) == m(&y.labels)
                && x.bases == y.bases
        };
        prop_assume!(!(same_maps(&a, &b) && da == db));
        prop_assert_ne!(a.key(&ca), b.key(&cb));
    }
}

/// One entry of a generated build context.
#[derive(Clone, Debug)]
enum Node {
    File { content: Vec<u8>, exec: bool },
    Link(String),
    EmptyDir,
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        4 => (prop::collection::vec(any::<u8>(), 0..64), any::<bool>())
            .prop_map(|(content, exec)| Node::File { content, exec }),
        1 => "[a-c./]{1,8}".prop_map(Node::Link),
        1 => Just(Node::EmptyDir),
    ]
}

/// A consistent tree: no file or symlink sits where another entry needs a directory.
fn tree() -> impl Strategy<Value = Vec<(String, Node)>> {
    prop::collection::btree_map("[a-c]{1,2}(/[a-c]{1,2}){0,2}", node(), 1..16).prop_map(|map| {
        let paths: Vec<String> = map.keys().cloned().collect();
        map.into_iter()
            .filter(|(path, node)| {
                let prefix = format!("{path}/");
                matches!(node, Node::EmptyDir) || !paths.iter().any(|p| p.starts_with(&prefix))
            })
            .collect()
    })
}

fn create(root: &Path, entries: &[(String, Node)]) -> std::io::Result<()> {
    for (rel, node) in entries {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        match node {
            Node::File { content, exec } => {
                fs::write(&path, content)?;
                let mode = if *exec { 0o755 } else { 0o644 };
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
            }
            Node::Link(target) => symlink(target, &path)?,
            Node::EmptyDir => fs::create_dir_all(&path)?,
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The digest depends on the set of entries, not on the order they were
    /// created in (which changes inode numbers and directory listing order).
    #[test]
    fn context_digest_ignores_creation_order(
        (entries, shuffled) in tree().prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle())),
    ) {
        let (a, b) = (tempfile::tempdir(), tempfile::tempdir());
        prop_assume!(a.is_ok() && b.is_ok());
        let (Ok(a), Ok(b)) = (a, b) else { return Ok(()) };
        prop_assert!(create(a.path(), &entries).is_ok());
        prop_assert!(create(b.path(), &shuffled).is_ok());
        let da = hash_context(a.path(), None, None);
        let db = hash_context(b.path(), None, None);
        prop_assert!(da.is_ok() && db.is_ok(), "{:?} {:?}", da, db);
        let (Ok(da), Ok(db)) = (da, db) else { return Ok(()) };
        prop_assert_eq!(da.digest, db.digest);
        prop_assert_eq!((da.files, da.bytes), (db.files, db.bytes));
        // The same tree with one file's content changed gives another digest.
        if let Some((rel, Node::File { content, .. })) =
            entries.iter().find(|(_, n)| matches!(n, Node::File { .. }))
        {
            let mut changed = content.clone();
            changed.push(b'!');
            prop_assert!(fs::write(b.path().join(rel), &changed).is_ok());
            let dc = hash_context(b.path(), None, None);
            prop_assert!(dc.as_ref().is_ok_and(|dc| dc.digest != da.digest));
        }
    }
}
