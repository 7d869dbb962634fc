//! One value for each [`Phase`], indexed by it: a new phase gets a slot
//! everywhere at once instead of a field to add in each place.

use std::ops::Index;

use crate::event::Phase;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerPhase<T>([T; Phase::ALL.len()]);

impl<T> PerPhase<T> {
    /// `make(phase)` for every phase.
    pub fn from_fn(make: impl FnMut(Phase) -> T) -> PerPhase<T> {
        PerPhase(Phase::ALL.map(make))
    }

    /// Every phase with its value, in [`Phase::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Phase, &T)> {
        Phase::ALL.into_iter().zip(&self.0)
    }
}

impl<T> Index<Phase> for PerPhase<T> {
    type Output = T;

    fn index(&self, phase: Phase) -> &T {
        // `Phase::ALL` lists the phases in declaration order (tested below).
        &self.0[phase as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_has_its_own_slot() {
        for (index, phase) in Phase::ALL.into_iter().enumerate() {
            assert_eq!(phase as usize, index, "{phase}");
        }
        let names = PerPhase::from_fn(Phase::as_str);
        for phase in Phase::ALL {
            assert_eq!(names[phase], phase.as_str());
        }
    }
}
