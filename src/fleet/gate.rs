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

/// What the controller settled, once, for every target's thread to wait for: `Ok` to go on
/// with these secrets, `Err` (why, for the targets' "not run") when no target changes anything.
pub(super) struct Settled {
    value: OnceLock<Result<Given, String>>,
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

    pub(super) fn publish(&self, given: Result<Given, String>) {
        self.value.set(given).ok();
        *self.set.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.done.notify_all();
    }

    pub(super) fn wait(&self) -> Result<&Given, &str> {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            set = self.done.wait(set).unwrap_or_else(|e| e.into_inner());
        }
        match self.value.get() {
            Some(Ok(given)) => Ok(given),
            Some(Err(why)) => Err(why),
            None => Err("the run stopped before any change"),
        }
    }
}

/// The order of an inventory's waves: a target changes only once every target of the earlier
/// waves is done, and not at all when one of them failed; within a wave, at most its `serial`
/// at once.
pub(super) struct Waves {
    left: Mutex<Vec<(usize, Vec<String>)>>,
    done: Condvar,
    serial: Vec<Permits>,
}

impl Waves {
    /// `waves[i]`: the wave of target i; `serial[w]`: how many of wave w change at once.
    pub(super) fn new(waves: &[usize], serial: impl Fn(usize) -> usize) -> Waves {
        let count = waves.iter().max().map_or(0, |m| m + 1);
        let mut left = vec![(0, Vec::new()); count];
        for w in waves {
            left[*w].0 += 1;
        }
        Waves {
            left: Mutex::new(left),
            done: Condvar::new(),
            serial: (0..count).map(|w| Permits::new(serial(w))).collect(),
        }
    }

    /// Wait until every earlier wave is done: `Ok` with a permit of this wave, or the targets
    /// of earlier waves that failed.
    pub(super) fn turn(&self, wave: usize) -> Result<Permit<'_>, Vec<String>> {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        while left[..wave].iter().any(|(n, _)| *n > 0) {
            left = self.done.wait(left).unwrap_or_else(|e| e.into_inner());
        }
        let failed: Vec<String> = left[..wave]
            .iter()
            .flat_map(|(_, f)| f.iter().cloned())
            .collect();
        drop(left);
        if failed.is_empty() {
            Ok(self.serial[wave].acquire())
        } else {
            Err(failed)
        }
    }

    /// A target of `wave` is done: `failed` when it failed on its own (one that did not run
    /// because an earlier wave failed is not named again).
    pub(super) fn finish(&self, wave: usize, label: &str, failed: bool) {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        left[wave].0 -= 1;
        if failed {
            left[wave].1.push(label.to_owned());
        }
        drop(left);
        self.done.notify_all();
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

    #[test]
    fn a_wave_waits_for_the_earlier_ones_and_stops_after_a_failure() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // Targets 0 (wave 0), 1 and 2 (wave 1), 3 (wave 2).
        let waves = Waves::new(&[0, 1, 1, 2], |_| 8);
        let order = Mutex::new(Vec::new());
        let clock = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for (i, w) in [(3usize, 2usize), (2, 1), (1, 1), (0, 0)] {
                let (waves, order, clock) = (&waves, &order, &clock);
                s.spawn(move || {
                    let turn = waves.turn(w);
                    let at = clock.fetch_add(1, Ordering::SeqCst);
                    order.lock().unwrap().push((i, at, turn.is_ok()));
                    drop(turn);
                    // Target 2 fails: wave 2 must not run.
                    waves.finish(w, &format!("t{i}"), i == 2);
                });
            }
        });
        let mut order = order.into_inner().unwrap();
        order.sort();
        let at = |i: usize| order[i].1;
        assert!(at(0) < at(1) && at(0) < at(2), "{order:?}");
        assert!(at(1) < at(3) && at(2) < at(3), "{order:?}");
        assert!(order[0].2 && order[1].2 && order[2].2, "{order:?}");
        assert!(
            !order[3].2,
            "wave 2 runs after a failure in wave 1: {order:?}"
        );
        assert_eq!(waves.turn(2).err().unwrap(), ["t2"]);
    }
}
