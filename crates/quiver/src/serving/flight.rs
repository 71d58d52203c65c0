//! Single-flight: concurrent requests for the same key compute it once per process. The first
//! caller to ask for a key leads it; later callers wait for the leader's answer. A leader that
//! fails or is cancelled (its request hit its deadline) drops its senders, and each waiter then
//! computes the keys it was left with itself — one bounded retry, never a hang.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Keys in flight and the callers waiting for them.
pub(crate) struct SingleFlight<K, V> {
    inflight: Mutex<HashMap<K, Vec<oneshot::Sender<V>>>>,
}

impl<K: Clone + Eq + Hash, V: Clone> SingleFlight<K, V> {
    pub fn new() -> Self {
        SingleFlight {
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// The values of `keys`. `compute` gets keys and returns one value per key, in order; it is
    /// called for the keys this call leads, and again for keys whose leader went away.
    pub async fn run<F, Fut, E>(&self, keys: &[K], compute: F) -> Result<Vec<V>, E>
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<V>, E>>,
    {
        let (led, waits) = self.join(keys);
        let mut out: Vec<Option<V>> = vec![None; keys.len()];
        if !led.is_empty() {
            let mut guard = Leading {
                flight: self,
                keys: led.iter().map(|&i| keys[i].clone()).collect(),
            };
            let values = compute(guard.keys.clone()).await?;
            guard.finish(&values);
            for (&i, v) in led.iter().zip(values) {
                out[i] = Some(v);
            }
        }
        let mut orphans: Vec<usize> = Vec::new();
        for (i, rx) in waits {
            match rx.await {
                Ok(v) => out[i] = Some(v),
                Err(_) => orphans.push(i),
            }
        }
        if !orphans.is_empty() {
            let values = compute(orphans.iter().map(|&i| keys[i].clone()).collect()).await?;
            for (&i, v) in orphans.iter().zip(values) {
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Registers the call: the positions it leads, and a receiver per position it waits for.
    #[allow(clippy::type_complexity)]
    fn join(&self, keys: &[K]) -> (Vec<usize>, Vec<(usize, oneshot::Receiver<V>)>) {
        let mut led = Vec::new();
        let mut waits = Vec::new();
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        for (i, key) in keys.iter().enumerate() {
            match inflight.get_mut(key) {
                Some(waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(tx);
                    waits.push((i, rx));
                }
                // A key asked twice in one call is led once and waited for once.
                None => {
                    inflight.insert(key.clone(), Vec::new());
                    led.push(i);
                }
            }
        }
        (led, waits)
    }
}

/// The keys a call leads. Finishing hands the values to the waiters; dropping it unfinished
/// (an error, a cancelled request) removes the keys, which wakes the waiters with an error so
/// they compute for themselves.
struct Leading<'a, K: Clone + Eq + Hash, V: Clone> {
    flight: &'a SingleFlight<K, V>,
    keys: Vec<K>,
}

impl<K: Clone + Eq + Hash, V: Clone> Leading<'_, K, V> {
    fn finish(&mut self, values: &[V]) {
        let mut inflight = self
            .flight
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (key, value) in self.keys.drain(..).zip(values) {
            for waiter in inflight.remove(&key).unwrap_or_default() {
                let _ = waiter.send(value.clone());
            }
        }
    }
}

impl<K: Clone + Eq + Hash, V: Clone> Drop for Leading<'_, K, V> {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut inflight = self
            .flight
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            inflight.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_compute_a_key_once() {
        let flight = Arc::new(SingleFlight::<u32, u32>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (flight, calls) = (flight.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                flight
                    .run(&[7], |keys| {
                        let calls = calls.clone();
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            Ok::<_, ()>(keys.iter().map(|k| k * 2).collect())
                        }
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(vec![14]));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn waiters_compute_themselves_when_the_leader_goes_away() {
        let flight = Arc::new(SingleFlight::<u32, u32>::new());
        let leader = {
            let flight = flight.clone();
            tokio::spawn(async move {
                flight
                    .run(&[1], |_| async {
                        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                        Ok::<_, ()>(vec![0])
                    })
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let waiter = {
            let flight = flight.clone();
            tokio::spawn(async move {
                flight
                    .run(&[1, 2], |keys| async move {
                        Ok::<_, ()>(keys.iter().map(|k| k + 100).collect())
                    })
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        leader.abort();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter does not hang")
            .unwrap();
        assert_eq!(got, Ok(vec![101, 102]));
        assert!(flight.inflight.lock().unwrap().is_empty());
    }
}
