//! The order book: replicas asked for and not serving yet. A live order counts as supply while
//! it is on its way; an order the fleet no longer needs is withdrawn (the answer drops to what
//! is needed, never below the replicas serving); an order older than `pendingTimeoutSeconds`
//! stops counting (the HPA was clamped, a quota refused it, the targets are fixed). Orders that
//! fill are the lead-time samples the policy learns from.

use serde::Serialize;

/// Replicas asked for at one time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Order {
    /// When asked for, ms.
    pub at_ms: u64,
    /// How many.
    pub count: u32,
}

/// Outstanding orders, oldest first.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct OrderBook {
    /// The orders.
    pub orders: Vec<Order>,
}

/// The book as of this decision.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Standing {
    /// Ordered replicas still within `pendingTimeoutSeconds` (counted as supply).
    pub live: u32,
    /// Ordered replicas past it (not counted).
    pub expired: u32,
    /// Mean age of the orders that filled since the last decision, ms.
    pub filled_lead_ms: Option<f64>,
}

impl OrderBook {
    /// Replicas on order.
    pub fn outstanding(&self) -> u32 {
        self.orders.iter().map(|o| o.count).sum()
    }

    /// Reconciles the book with the fleet: what is outstanding is `asked - ready`, newest
    /// orders first (older ones are the likeliest filled). Orders leaving from the old end
    /// while the ready count grew (by `arrived`) are fills, and their age is a lead time.
    pub fn reconcile(
        &self,
        asked: u32,
        ready: u32,
        arrived: u32,
        now_ms: u64,
        timeout_ms: u64,
    ) -> (OrderBook, Standing) {
        let mut left = asked.saturating_sub(ready);
        let mut kept = Vec::new();
        let (mut live, mut expired) = (0, 0);
        let mut split = self.orders.len();
        for (i, o) in self.orders.iter().enumerate().rev() {
            if left == 0 {
                break;
            }
            split = i;
            let take = o.count.min(left);
            left -= take;
            if now_ms.saturating_sub(o.at_ms) < timeout_ms {
                live += take;
            } else {
                expired += take;
            }
            kept.push(Order {
                at_ms: o.at_ms,
                count: take,
            });
        }
        kept.reverse();
        // What left the book: the orders before `split` and the untaken part of the one at it.
        let mut gone: Vec<Order> = self.orders[..split].to_vec();
        if let (Some(o), Some(k)) = (self.orders.get(split), kept.first())
            && k.at_ms == o.at_ms
            && o.count > k.count
        {
            gone.push(Order {
                at_ms: o.at_ms,
                count: o.count - k.count,
            });
        }
        let mut fills = arrived;
        let (mut total_ms, mut n) = (0.0, 0u32);
        for o in &gone {
            if fills == 0 {
                break;
            }
            let take = o.count.min(fills);
            fills -= take;
            total_ms += now_ms.saturating_sub(o.at_ms) as f64 * f64::from(take);
            n += take;
        }
        (
            OrderBook { orders: kept },
            Standing {
                live,
                expired,
                filled_lead_ms: (n > 0).then(|| total_ms / f64::from(n)),
            },
        )
    }

    /// Replicas on order for less than `within_ms`.
    pub fn younger_than(&self, now_ms: u64, within_ms: f64) -> u32 {
        self.orders
            .iter()
            .filter(|o| (now_ms.saturating_sub(o.at_ms) as f64) < within_ms)
            .map(|o| o.count)
            .sum()
    }

    /// Withdraws orders, newest first, until at most `keep` remain; returns how many went.
    pub fn withdraw(&mut self, keep: u32) -> u32 {
        let mut excess = self.outstanding().saturating_sub(keep);
        let withdrawn = excess;
        while excess > 0 {
            let Some(last) = self.orders.last_mut() else {
                break;
            };
            let take = last.count.min(excess);
            last.count -= take;
            excess -= take;
            if last.count == 0 {
                self.orders.pop();
            }
        }
        withdrawn
    }

    /// Records `count` replicas asked for at `now_ms`.
    pub fn place(&mut self, now_ms: u64, count: u32) {
        if count > 0 {
            self.orders.push(Order {
                at_ms: now_ms,
                count,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(orders: &[(u64, u32)]) -> OrderBook {
        OrderBook {
            orders: orders
                .iter()
                .map(|&(at_ms, count)| Order { at_ms, count })
                .collect(),
        }
    }

    #[test]
    fn orders_on_time_are_the_young_ones() {
        // 2 asked at 0 s, 3 at 100 s; at 150 s with a 120 s cutoff only the 3 are on time.
        let b = book(&[(0, 2), (100_000, 3)]);
        assert_eq!(b.younger_than(150_000, 120_000.0), 3);
        assert_eq!(b.younger_than(150_000, 200_000.0), 5);
        assert_eq!(b.younger_than(150_000, 10_000.0), 0);
    }

    #[test]
    fn filled_orders_leave_from_the_old_end_and_give_their_age() {
        // Asked 3 at t=0 and 2 at t=30 s, from 2 ready (7 asked); at t=70 s 3 more serve.
        let b = book(&[(0, 3), (30_000, 2)]);
        let (next, s) = b.reconcile(7, 5, 3, 70_000, 600_000);
        assert_eq!(next, book(&[(30_000, 2)]));
        assert_eq!((s.live, s.expired), (2, 0));
        assert_eq!(s.filled_lead_ms, Some(70_000.0));
    }

    #[test]
    fn a_partly_filled_order_keeps_its_rest_and_time() {
        let b = book(&[(0, 4)]);
        // 2 of 4 arrived by t=50 s.
        let (next, s) = b.reconcile(6, 4, 2, 50_000, 600_000);
        assert_eq!(next, book(&[(0, 2)]));
        assert_eq!(s.filled_lead_ms, Some(50_000.0));
    }

    #[test]
    fn an_order_past_the_timeout_stops_counting_as_supply() {
        let b = book(&[(0, 3)]);
        let (_, s) = b.reconcile(5, 2, 0, 600_000, 600_000);
        assert_eq!((s.live, s.expired), (0, 3));
        assert_eq!(s.filled_lead_ms, None);
    }

    #[test]
    fn withdrawal_takes_the_newest_orders_first() {
        let mut b = book(&[(0, 2), (10_000, 3)]);
        assert_eq!(b.withdraw(1), 4);
        assert_eq!(b, book(&[(0, 1)]));
        assert_eq!(b.withdraw(5), 0);
    }
}
