//! [`Lazy`]: a part of the goal's context that is only fetched if a gate
//! reads it.
//!
//! Since `omk:gate@0.2.0` the goal's text, the tasks admitted earlier in the
//! wave and the goal's task ids are not passed with every decision; a gate
//! asks the host for them through the `context` interface. In the SDK they
//! are [`Lazy`] fields of [`GoalContext`](crate::GoalContext): reading one
//! (it dereferences to its value) asks the host the first time, inside a
//! component, and is a plain value everywhere else (natively, in tests, in
//! the host). Its JSON form is the value's.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value fetched on first read, then kept; cheap to clone once known.
pub struct Lazy<T> {
    value: OnceLock<Arc<T>>,
    fetch: Option<fn() -> T>,
}

impl<T> Lazy<T> {
    /// A value already known.
    pub fn new(value: T) -> Lazy<T> {
        Lazy::from_shared(Arc::new(value))
    }

    /// A value already known and shared: cloning the context does not copy it.
    pub fn from_shared(value: Arc<T>) -> Lazy<T> {
        Lazy {
            value: OnceLock::from(value),
            fetch: None,
        }
    }

    /// A value `fetch` gives on first read (the component glue's host call).
    pub fn on_demand(fetch: fn() -> T) -> Lazy<T> {
        Lazy {
            value: OnceLock::new(),
            fetch: Some(fetch),
        }
    }
}

impl<T: Default> Lazy<T> {
    /// The value, fetched if it was not yet.
    pub fn get(&self) -> &T {
        self.shared_ref()
    }

    /// The value as a shared pointer, fetched if it was not yet.
    pub fn shared(&self) -> Arc<T> {
        Arc::clone(self.shared_ref())
    }

    fn shared_ref(&self) -> &Arc<T> {
        self.value
            .get_or_init(|| Arc::new(self.fetch.map_or_else(T::default, |f| f())))
    }
}

impl<T: Default> Deref for Lazy<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.get()
    }
}

/// Changing the value (native code building a context) fetches it first and
/// copies it if it is shared.
impl<T: Default + Clone> DerefMut for Lazy<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.shared_ref();
        match self.value.get_mut() {
            Some(v) => Arc::make_mut(v),
            None => unreachable!("`shared_ref` sets the value"),
        }
    }
}

impl<T> Clone for Lazy<T> {
    fn clone(&self) -> Lazy<T> {
        match self.value.get() {
            Some(v) => Lazy::from_shared(Arc::clone(v)),
            None => Lazy {
                value: OnceLock::new(),
                fetch: self.fetch,
            },
        }
    }
}

impl<T: Default> Default for Lazy<T> {
    fn default() -> Lazy<T> {
        Lazy::new(T::default())
    }
}

impl<T> From<T> for Lazy<T> {
    fn from(value: T) -> Lazy<T> {
        Lazy::new(value)
    }
}

impl From<&str> for Lazy<String> {
    fn from(value: &str) -> Lazy<String> {
        Lazy::new(value.to_owned())
    }
}

impl<T> FromIterator<T> for Lazy<Vec<T>> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Lazy<Vec<T>> {
        Lazy::new(iter.into_iter().collect())
    }
}

impl<'a, T> IntoIterator for &'a Lazy<Vec<T>> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.get().iter()
    }
}

impl<T: Default + fmt::Debug> fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl<T: Default + PartialEq> PartialEq for Lazy<T> {
    fn eq(&self, other: &Lazy<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Default + Eq> Eq for Lazy<T> {}

impl<T: Default + Serialize> Serialize for Lazy<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lazy<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lazy<T>, D::Error> {
        T::deserialize(d).map(Lazy::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    static CALLS: AtomicU32 = AtomicU32::new(0);

    fn fetch() -> Vec<String> {
        CALLS.fetch_add(1, Ordering::SeqCst);
        vec!["a".into()]
    }

    #[test]
    fn fetched_once_on_first_read_and_only_then() {
        let lazy = Lazy::on_demand(fetch);
        let copy = lazy.clone();
        assert_eq!(CALLS.load(Ordering::SeqCst), 0);
        assert_eq!(lazy.len(), 1);
        assert_eq!(lazy[0], "a");
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        // A clone taken before the first read fetches on its own read.
        assert_eq!(*copy, ["a"]);
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn json_is_the_value() {
        let lazy: Lazy<Vec<String>> = vec!["x".to_owned()].into();
        assert_eq!(serde_json::to_string(&lazy).unwrap(), r#"["x"]"#);
        let back: Lazy<Vec<String>> = serde_json::from_str(r#"["x"]"#).unwrap();
        assert_eq!(back, lazy);
        assert!(Arc::ptr_eq(&lazy.shared(), &lazy.clone().shared()));
        // A change copies a shared value and leaves the other alone.
        let mut changed = lazy.clone();
        changed.push("y".into());
        assert_eq!((lazy.len(), changed.len()), (1, 2));
    }
}
