//! The one policy for poisoned locks, for every crate of petrel.
//!
//! A `std::sync::Mutex` is poisoned only when a thread panicked while holding it. petrel's
//! code does not panic (the workspace lints deny it), so poisoning means a bug, and the panic
//! itself was already reported where it happened (the panic message, and the task's join
//! error). Every mutex in petrel guards a map, a set or a small state whose every operation
//! completes under one guard, so the data is whole even then: [`lock`] takes it back and goes
//! on. It never skips the guarded work (as `if let Ok(..) = mutex.lock()` would, silently
//! switching off a concurrency limit or losing a wake-up) and never panics. (The queue
//! crate's own `unwrap_or_else(PoisonError::into_inner)` calls are this same policy.)

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking the data back if a panic poisoned it (see the module's policy).
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_gives_its_data_back() {
        let mutex = std::sync::Arc::new(Mutex::new(vec![1]));
        let held = mutex.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(mutex.is_poisoned());
        lock(&mutex).push(2);
        assert_eq!(*lock(&mutex), [1, 2]);
    }
}
