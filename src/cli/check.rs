//! Every invalid setting, found in one pass: each check runs whatever failed before it, and the process prints
//! them all, one line each, before exiting with code 2 (a pod with three mistakes learns of all three at once).

use std::{fmt, time::Duration};

/// One setting that cannot be used.
#[derive(Debug)]
pub struct Invalid {
    /// The flag / environment variable at fault.
    pub setting: &'static str,
    /// What is wrong with it (never its secret value).
    pub problem: String,
}

/// Every setting that cannot be used, one line each: the process prints them all and exits with code 2, so a
/// deployment with several mistakes learns of them in one start.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order the settings are checked (at least one).
    pub problems: Vec<Invalid>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, invalid) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(
                f,
                "invalid setting {}: {}",
                invalid.setting, invalid.problem
            )?;
        }
        Ok(())
    }
}

impl ConfigError {
    pub(super) fn new(setting: &'static str, problem: impl fmt::Display) -> Self {
        Self {
            problems: vec![Invalid {
                setting,
                problem: problem.to_string(),
            }],
        }
    }

    /// The first problem found.
    pub fn first(&self) -> Option<&Invalid> {
        self.problems.first()
    }
}

/// The problems found so far while checking the settings: every check runs, whatever failed before it.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<Invalid>);

impl Problems {
    pub(super) fn add(&mut self, setting: &'static str, problem: impl fmt::Display) {
        self.0.push(Invalid {
            setting,
            problem: problem.to_string(),
        });
    }

    pub(super) fn ensure(&mut self, ok: bool, setting: &'static str, problem: &str) {
        if !ok {
            self.add(setting, problem);
        }
    }

    pub(super) fn positive(&mut self, value: Duration, setting: &'static str) {
        self.ensure(!value.is_zero(), setting, "must be greater than zero");
    }

    /// The value of `result`, or `None` with its error recorded against `setting`.
    pub(super) fn take<T, E: fmt::Display>(
        &mut self,
        setting: &'static str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(problem) => {
                self.add(setting, problem);
                None
            }
        }
    }

    /// `Err` with every problem when there is any.
    pub(super) fn finish(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems: self.0 })
        }
    }
}
