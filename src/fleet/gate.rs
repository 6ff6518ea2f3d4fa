//! How the targets' threads wait: for a permit to work (at most `--parallel` at once), and for
//! the controller to settle once between planning and changing.

use std::sync::{Condvar, Mutex, OnceLock};

use crate::secrets::Given;

/// At most N targets work at once (connecting and planning, or changing); one waiting for the
/// others between the two holds none.
pub(super) struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    pub(super) fn new(n: usize) -> Permits {
        Permits {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        }
    }

    pub(super) fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

pub(super) struct Permit<'a>(&'a Permits);

/// What the controller settled, once, for every target's thread to wait for: `Some` to go on
/// with these secrets, `None` when it refused and no target changes anything.
pub(super) struct Settled {
    value: OnceLock<Option<Given>>,
    set: Mutex<bool>,
    done: Condvar,
}

impl Settled {
    pub(super) fn new() -> Settled {
        Settled {
            value: OnceLock::new(),
            set: Mutex::new(false),
            done: Condvar::new(),
        }
    }

    pub(super) fn publish(&self, given: Option<Given>) {
        self.value.set(given).ok();
        *self.set.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.done.notify_all();
    }

    pub(super) fn wait(&self) -> Option<&Given> {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            set = self.done.wait(set).unwrap_or_else(|e| e.into_inner());
        }
        self.value.get().and_then(Option::as_ref)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_bound_how_many_work_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let permits = Permits::new(3);
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    let _p = permits.acquire();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most}");
        assert_eq!(*permits.free.lock().unwrap(), 3, "every permit back");
    }
}
