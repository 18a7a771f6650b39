//! `fleetboot reboot`'s batch flags (windows, `--only-if`): one flattened group, parsed straight
//! into core's [`BatchPartial`].

use clap::Args;

use fleetboot_core::batch::{BatchPartial, Window};
use fleetboot_core::settings::parse_command;

/// Maintenance windows and `--only-if`.
#[derive(Args, Debug, Default, Clone)]
pub struct BatchArgs {
    /// New reboots start only inside this window: `DAYS HH:MM-HH:MM` or `HH:MM-HH:MM` (every
    /// day), e.g. "Mon-Fri 22:00-06:00" (crossing midnight: it belongs to the day it starts).
    /// Repeatable. Hosts in flight always finish. Outside a window the run waits with a
    /// countdown, or stops with --window-exit.
    #[arg(long = "window", value_name = "WINDOW", value_parser = parse_window)]
    pub windows: Vec<Window>,
    /// The windows' time zone, an IANA name (Europe/Berlin) [default: UTC]. Clock changes are
    /// kept: a window on such a day is as long as the wall clock says.
    #[arg(long, value_name = "ZONE", value_parser = parse_zone, requires = "windows")]
    pub window_tz: Option<String>,
    /// Outside the windows, stop instead of waiting: exit 5 once the hosts in flight are done;
    /// `--resume` continues (inside a window).
    #[arg(long, requires = "windows")]
    pub window_exit: bool,
    /// Run on each host (through the transport) right before it would start: exit 0 means it
    /// needs the reboot; any other exit journals it `not needed` (e.g. "test -f
    /// /var/run/reboot-required").
    #[arg(long, value_name = "CMD", value_parser = parse_command)]
    pub only_if: Option<String>,
}

fn parse_window(text: &str) -> Result<Window, String> {
    text.parse()
}

fn parse_zone(text: &str) -> Result<String, String> {
    let name = text.trim();
    crate::adapters::tz::IanaZone::named(name).map(|_| name.to_owned()).map_err(|e| e.to_string())
}

impl BatchArgs {
    /// What these flags set (`Some` where given).
    pub fn partial(&self) -> BatchPartial {
        BatchPartial {
            windows: Some(self.windows.clone()).filter(|w| !w.is_empty()),
            window_tz: self.window_tz.clone(),
            window_exit: self.window_exit.then_some(true),
            only_if: self.only_if.clone(),
        }
    }
}
