//! Prediction error: |predicted - measured| of every measured move, as a mean overall, over
//! the last [`RECENT`] moves, and per window of [`ErrorTracker::window_moves`] moves (the
//! series that shows whether the model learns).

use alloc::vec::Vec;

/// Moves the "recent" mean covers.
pub const RECENT: usize = 16;
/// Windows kept (the first ones are never dropped: the oldest after them are).
pub const MAX_WINDOWS: usize = 256;

/// The tracker.
#[derive(Debug, Clone)]
pub struct ErrorTracker {
    /// Moves per window.
    pub window_moves: u32,
    total_abs: i128,
    count: u64,
    recent: [i64; RECENT],
    recent_next: usize,
    window_sum: i64,
    window_count: u32,
    windows: Vec<i64>,
}

impl ErrorTracker {
    /// A tracker closing a window every `window_moves` moves (at least 1).
    pub fn new(window_moves: u32) -> Self {
        Self {
            window_moves: window_moves.max(1),
            total_abs: 0,
            count: 0,
            recent: [0; RECENT],
            recent_next: 0,
            window_sum: 0,
            window_count: 0,
            windows: Vec::new(),
        }
    }

    /// Records one move's prediction and measurement (Q16).
    pub fn record(&mut self, predicted: i64, measured: i64) {
        let e = predicted.saturating_sub(measured).saturating_abs();
        self.total_abs += i128::from(e);
        self.count += 1;
        self.recent[self.recent_next] = e;
        self.recent_next = (self.recent_next + 1) % RECENT;
        self.window_sum = self.window_sum.saturating_add(e);
        self.window_count += 1;
        if self.window_count == self.window_moves {
            if self.windows.len() == MAX_WINDOWS {
                // Keep the first windows (the comparison needs them); drop the oldest after.
                self.windows.remove(MAX_WINDOWS / 2);
            }
            self.windows
                .push(self.window_sum / i64::from(self.window_moves));
            self.window_sum = 0;
            self.window_count = 0;
        }
    }

    /// Moves measured.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean absolute error over every move (Q16), `None` before the first.
    pub fn mae(&self) -> Option<i64> {
        (self.count > 0).then(|| (self.total_abs / i128::from(self.count)) as i64)
    }

    /// Mean absolute error over the last [`RECENT`] moves (fewer at first).
    pub fn mae_recent(&self) -> Option<i64> {
        let n = (self.count as usize).min(RECENT);
        if n == 0 {
            return None;
        }
        let sum: i64 = (0..n)
            .map(|i| self.recent[(self.recent_next + RECENT - 1 - i) % RECENT])
            .sum();
        Some(sum / n as i64)
    }

    /// Mean absolute error of each closed window, oldest first.
    pub fn windows(&self) -> &[i64] {
        &self.windows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::ONE;

    #[test]
    fn means_overall_recent_and_per_window() {
        let mut t = ErrorTracker::new(4);
        assert_eq!(t.mae(), None);
        assert_eq!(t.mae_recent(), None);
        for _ in 0..4 {
            t.record(ONE, 0);
        }
        for _ in 0..RECENT {
            t.record(0, ONE / 4);
        }
        assert_eq!(t.count(), 4 + RECENT as u64);
        assert_eq!(t.mae_recent(), Some(ONE / 4));
        let overall = (4 * ONE + RECENT as i64 * ONE / 4) / (4 + RECENT as i64);
        assert_eq!(t.mae(), Some(overall));
        assert_eq!(t.windows()[0], ONE);
        assert_eq!(t.windows()[1], ONE / 4);
        assert_eq!(t.windows().len(), 1 + RECENT / 4);
    }

    #[test]
    fn first_windows_survive_a_long_run() {
        let mut t = ErrorTracker::new(1);
        t.record(ONE, 0);
        for _ in 0..1000 {
            t.record(0, 0);
        }
        assert_eq!(t.windows().len(), MAX_WINDOWS);
        assert_eq!(t.windows()[0], ONE);
    }
}
