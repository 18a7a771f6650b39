//! What to do about a host whose new boot ID has not shown yet: wait, send the SSH reboot again
//! when the first one provably never arrived, reset it through its BMC (an orderly restart
//! first, a forced one after that), or give up. Pure: the attempts so far, what the last look
//! at the host showed, and `now` in, one decision out; the runner and a resumed run ask the
//! same question.

use crate::journal::Attempt;
use crate::power::RestartKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ladder {
    /// From a reboot sent to the deadline for its new boot ID.
    pub timeout_ms: u64,
    /// After an SSH reboot, the node may still go down on its own this long (systemd's minute).
    pub scheduled_delay_ms: u64,
    /// After a GracefulRestart through the BMC, a ForceRestart follows this much later.
    pub graceful_timeout_ms: u64,
    /// A BMC is known for the host and the policy lets it take over from a hung node.
    pub bmc_for_hung: bool,
    /// After the scheduled delay, how much longer an SSH reboot fleetboot could not see handed
    /// over gets before it counts as lost.
    pub resend_grace_ms: u64,
}

/// What the last look at the host showed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// It answered, with the boot ID it had before the reboot.
    pub old_boot_id: bool,
    /// It stopped answering at some point after the last reboot was sent.
    pub went_down: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep watching until then.
    WaitUntil(u64),
    /// Reset through the BMC now.
    Reset(RestartKind),
    /// Send the SSH reboot again: the first was never seen handed over (fleetboot died between
    /// journaling it and sending it), and the host, still up with its old boot ID long after any
    /// scheduled shutdown would have run, shows it never arrived.
    ResendSsh,
    GiveUp,
}

impl Ladder {
    pub fn next(&self, attempts: &[Attempt], now_ms: u64, seen: Seen) -> Next {
        let Some(last) = attempts.last() else { return Next::GiveUp };
        let resent = attempts.iter().filter(|a| a.bmc.is_none()).count() > 1;
        if last.bmc.is_none() && !last.handed_over && !resent && seen.old_boot_id && !seen.went_down {
            let lost_at = last.at_ms.saturating_add(self.scheduled_delay_ms).saturating_add(self.resend_grace_ms);
            if now_ms >= lost_at {
                return Next::ResendSsh;
            }
        }
        let (at, step) = match last.bmc {
            None if self.bmc_for_hung => {
                // Never reset a node that may still be going down on its own.
                let at = last.at_ms.saturating_add(self.timeout_ms.max(self.scheduled_delay_ms));
                (at, Next::Reset(RestartKind::Graceful))
            }
            None => (last.at_ms.saturating_add(self.timeout_ms), Next::GiveUp),
            Some(RestartKind::Graceful) => (last.at_ms.saturating_add(self.graceful_timeout_ms), Next::Reset(RestartKind::Force)),
            Some(RestartKind::Force) => (last.at_ms.saturating_add(self.timeout_ms), Next::GiveUp),
        };
        if now_ms >= at { step } else { Next::WaitUntil(at) }
    }
}

/// How long before a scheduled shutdown begins a cancel is still worth trying: a cancel that
/// races systemd's start of the shutdown could be "verified" while the node goes down anyway.
pub const CANCEL_MARGIN_MS: u64 = 10_000;

/// Whether the reboot command is one `shutdown -c` can take back: `shutdown` (after `sudo`
/// and its options), scheduled for later, not `now` or `+0`. An immediate command
/// (`systemctl reboot`, `reboot`, `shutdown -r now`) leaves nothing to cancel, and a cancel
/// that "verifies" against it proves nothing. Pure.
pub fn cancellable_command(command: &str) -> bool {
    let mut words = command.split_whitespace().peekable();
    if words.peek() == Some(&"sudo") {
        words.next();
        while words.peek().is_some_and(|w| w.starts_with('-')) {
            words.next();
        }
    }
    let program = words.next().map(|p| p.rsplit('/').next().unwrap_or(p));
    program == Some("shutdown") && !words.any(|w| matches!(w, "now" | "+0" | "0"))
}

/// Whether a pending reboot may still be cancelled at `now_ms`: every attempt was an SSH
/// command of a cancellable kind, and the last one's scheduled shutdown is more than
/// [`CANCEL_MARGIN_MS`] away (once systemd has begun it, the node may answer for a while yet
/// and still go down). Pure.
pub fn cancel_still_possible(command: &str, attempts: &[Attempt], scheduled_delay_ms: u64, now_ms: u64) -> bool {
    let Some(last) = attempts.last() else { return false };
    cancellable_command(command)
        && attempts.iter().all(|a| a.bmc.is_none())
        && now_ms.saturating_add(CANCEL_MARGIN_MS) < last.at_ms.saturating_add(scheduled_delay_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LADDER: Ladder =
        Ladder { timeout_ms: 600, scheduled_delay_ms: 60, graceful_timeout_ms: 300, bmc_for_hung: true, resend_grace_ms: 30 };
    const NOTHING: Seen = Seen { old_boot_id: false, went_down: false };

    fn ssh(at_ms: u64) -> Attempt {
        Attempt { bmc: None, at_ms, handed_over: true }
    }

    fn bmc(kind: RestartKind, at_ms: u64) -> Attempt {
        Attempt { bmc: Some(kind), at_ms, handed_over: true }
    }

    #[test]
    fn a_journal_time_no_clock_can_reach_waits_forever_instead_of_overflowing() {
        let far = u64::MAX - 5;
        assert_eq!(LADDER.next(&[ssh(far)], 0, NOTHING), Next::WaitUntil(u64::MAX));
        assert_eq!(LADDER.next(&[bmc(RestartKind::Graceful, far)], 0, NOTHING), Next::WaitUntil(u64::MAX));
        let unsent = Attempt { bmc: None, at_ms: far, handed_over: false };
        let seen = Seen { old_boot_id: true, went_down: false };
        assert_eq!(LADDER.next(&[unsent], 0, seen), Next::WaitUntil(u64::MAX));
        assert!(!cancel_still_possible("sudo shutdown -r +1", &[ssh(0)], 60_000, u64::MAX));
    }

    #[test]
    fn an_ssh_reboot_never_handed_over_is_sent_again_once_provably_lost() {
        let lost = Attempt { bmc: None, at_ms: 0, handed_over: false };
        let up_old = Seen { old_boot_id: true, went_down: false };
        assert_eq!(LADDER.next(&[lost], 89, up_old), Next::WaitUntil(600), "not before the scheduled delay and the grace");
        assert_eq!(LADDER.next(&[lost], 90, up_old), Next::ResendSsh);
        // Any doubt keeps waiting: it went down, it did not answer, or it was handed over.
        assert_eq!(LADDER.next(&[lost], 90, Seen { old_boot_id: true, went_down: true }), Next::WaitUntil(600));
        assert_eq!(LADDER.next(&[lost], 90, NOTHING), Next::WaitUntil(600));
        assert_eq!(LADDER.next(&[ssh(0)], 90, up_old), Next::WaitUntil(600));
        // Only once.
        let again = [lost, Attempt { bmc: None, at_ms: 90, handed_over: false }];
        assert_eq!(LADDER.next(&again, 200, up_old), Next::WaitUntil(690));
    }

    #[test]
    fn ssh_then_graceful_then_forced_then_give_up() {
        assert_eq!(LADDER.next(&[ssh(0)], 10, NOTHING), Next::WaitUntil(600));
        assert_eq!(LADDER.next(&[ssh(0)], 600, NOTHING), Next::Reset(RestartKind::Graceful));
        let after_graceful = [ssh(0), bmc(RestartKind::Graceful, 600)];
        assert_eq!(LADDER.next(&after_graceful, 700, NOTHING), Next::WaitUntil(900));
        assert_eq!(LADDER.next(&after_graceful, 900, NOTHING), Next::Reset(RestartKind::Force));
        let after_force = [ssh(0), bmc(RestartKind::Graceful, 600), bmc(RestartKind::Force, 900)];
        assert_eq!(LADDER.next(&after_force, 1499, NOTHING), Next::WaitUntil(1500));
        assert_eq!(LADDER.next(&after_force, 1500, NOTHING), Next::GiveUp);
    }

    #[test]
    fn without_a_bmc_the_deadline_ends_it() {
        let no_bmc = Ladder { bmc_for_hung: false, ..LADDER };
        assert_eq!(no_bmc.next(&[ssh(0)], 599, NOTHING), Next::WaitUntil(600));
        assert_eq!(no_bmc.next(&[ssh(0)], 600, NOTHING), Next::GiveUp);
        // A host that SSH never reached starts on the BMC and climbs from there.
        assert_eq!(no_bmc.next(&[bmc(RestartKind::Graceful, 0)], 300, NOTHING), Next::Reset(RestartKind::Force));
    }

    #[test]
    fn a_pending_scheduled_shutdown_is_waited_out_even_with_a_short_timeout() {
        let short = Ladder { timeout_ms: 10, ..LADDER };
        assert_eq!(short.next(&[ssh(0)], 30, NOTHING), Next::WaitUntil(60));
        assert_eq!(short.next(&[ssh(0)], 60, NOTHING), Next::Reset(RestartKind::Graceful));
    }

    proptest! {
        /// Walking the ladder always ends, with at most one orderly and one forced reset, and
        /// no BMC reset ever before the scheduled shutdown could have happened.
        #[test]
        fn the_ladder_ends_and_never_resets_early(timeout in 1u64..1000, delay in 0u64..1000, graceful in 1u64..1000, hung: bool, first_bmc: bool) {
            let ladder = Ladder { timeout_ms: timeout, scheduled_delay_ms: delay, graceful_timeout_ms: graceful, bmc_for_hung: hung, resend_grace_ms: 30 };
            let mut attempts = vec![if first_bmc { bmc(RestartKind::Graceful, 0) } else { ssh(0) }];
            let mut now = 0;
            for _ in 0..10 {
                match ladder.next(&attempts, now, NOTHING) {
                    Next::WaitUntil(t) => { prop_assert!(t > now); now = t; }
                    Next::Reset(kind) => {
                        if !first_bmc { prop_assert!(now >= delay); }
                        attempts.push(bmc(kind, now));
                    }
                    Next::GiveUp => break,
                    Next::ResendSsh => prop_assert!(false, "nothing was seen"),
                }
            }
            prop_assert_eq!(ladder.next(&attempts, now, NOTHING), Next::GiveUp);
            prop_assert!(attempts.iter().filter(|a| a.bmc == Some(RestartKind::Graceful)).count() <= 1);
            prop_assert!(attempts.iter().filter(|a| a.bmc == Some(RestartKind::Force)).count() <= 1);
        }
    }

    #[test]
    fn a_cancel_is_tried_only_for_a_scheduled_shutdown_before_it_begins() {
        for command in ["sudo shutdown -r -t 3", "shutdown -r +5", "sudo -n /usr/sbin/shutdown -r"] {
            assert!(cancellable_command(command), "{command}");
        }
        for command in ["sudo systemctl reboot", "reboot", "sudo shutdown -r now", "shutdown -r +0", "sudo -n reboot -f", ""] {
            assert!(!cancellable_command(command), "{command}");
        }
        let ssh = |at_ms| Attempt { bmc: None, at_ms, handed_over: true };
        let command = "sudo shutdown -r -t 3";
        assert!(cancel_still_possible(command, &[ssh(1_000)], 60_000, 40_000));
        // Within the margin of the scheduled time, or past it: systemd may have begun.
        assert!(!cancel_still_possible(command, &[ssh(1_000)], 60_000, 52_000));
        assert!(!cancel_still_possible(command, &[ssh(1_000)], 60_000, 90_000));
        // A BMC reset among the attempts cannot be taken back.
        let bmc = Attempt { bmc: Some(RestartKind::Graceful), at_ms: 2_000, handed_over: true };
        assert!(!cancel_still_possible(command, &[ssh(1_000), bmc], 60_000, 3_000));
        assert!(!cancel_still_possible("sudo systemctl reboot", &[ssh(1_000)], 60_000, 2_000));
        assert!(!cancel_still_possible(command, &[], 60_000, 2_000));
    }
}
