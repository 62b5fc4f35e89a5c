//! Keys → intents, per focus. A table per focus, looked up in order: overlays first, then the
//! focused pane, then keys that work everywhere. A printable character no table claims is typed,
//! whichever pane has focus: someone who starts typing in the wrong pane is typing a message.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Which pane takes the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Focus {
    #[default]
    Input,
    Messages,
    Queue,
    /// The peer list (only while it is on screen).
    Peers,
}

impl Focus {
    /// The next pane for Tab; the peer list counts only when `peers` (it is on screen).
    pub fn next(self, peers: bool) -> Self {
        match self {
            Focus::Input => Focus::Messages,
            Focus::Messages => Focus::Queue,
            Focus::Queue if peers => Focus::Peers,
            Focus::Queue | Focus::Peers => Focus::Input,
        }
    }

    pub fn prev(self, peers: bool) -> Self {
        match self {
            Focus::Input if peers => Focus::Peers,
            Focus::Input => Focus::Queue,
            Focus::Messages => Focus::Input,
            Focus::Queue => Focus::Messages,
            Focus::Peers => Focus::Queue,
        }
    }
}

/// What a key means, whatever key it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    Quit,
    Help,
    CloseOverlay,
    Confirm,
    Deny,
    FocusNext,
    FocusPrev,
    Submit,
    Insert(char),
    Left,
    Right,
    Home,
    End,
    Backspace,
    Delete,
    ClearLine,
    HistoryUp,
    HistoryDown,
    ScrollUp,
    ScrollDown,
    PageUp,
    PageDown,
    Top,
    Bottom,
    SelectUp,
    SelectDown,
    SelectFirst,
    SelectLast,
    Accept,
    Reject,
    Cancel,
    Retry,
    /// Open the conversation at this place in the peer list (0: Everyone).
    OpenNumber(u8),
    NextConversation,
    PrevConversation,
    /// The next conversation with messages not seen yet.
    NextUnread,
    /// The peer list's cursor, which opens what it is on.
    PeerUp,
    PeerDown,
    /// Dial the open conversation's peer if it has no session.
    DialOpen,
    /// Show the selected folder's files; hide them.
    Expand,
    Collapse,
}

/// What is on screen that changes the meaning of keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyContext {
    pub focus: Focus,
    pub help_open: bool,
    pub confirm_open: bool,
    /// The status line asks whether to decline or cancel a file.
    pub prompt_open: bool,
    pub input_empty: bool,
}

type Binding = (KeyCode, KeyModifiers, Intent);

const NONE: KeyModifiers = KeyModifiers::NONE;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;
const SHIFT: KeyModifiers = KeyModifiers::SHIFT;
const ALT: KeyModifiers = KeyModifiers::ALT;

const CONFIRM: &[Binding] = &[
    (KeyCode::Char('y'), NONE, Intent::Confirm),
    (KeyCode::Char('Y'), SHIFT, Intent::Confirm),
    (KeyCode::Enter, NONE, Intent::Confirm),
    (KeyCode::Char('n'), NONE, Intent::Deny),
    (KeyCode::Char('N'), SHIFT, Intent::Deny),
    (KeyCode::Esc, NONE, Intent::Deny),
    (KeyCode::Char('c'), CTRL, Intent::Confirm),
];

/// A yes or no about one file. Unlike the quit question, Ctrl-C is no answer here: it goes on to
/// quit.
const PROMPT: &[Binding] = &[
    (KeyCode::Char('y'), NONE, Intent::Confirm),
    (KeyCode::Char('Y'), SHIFT, Intent::Confirm),
    (KeyCode::Enter, NONE, Intent::Confirm),
    (KeyCode::Char('n'), NONE, Intent::Deny),
    (KeyCode::Char('N'), SHIFT, Intent::Deny),
    (KeyCode::Esc, NONE, Intent::Deny),
];

const HELP: &[Binding] = &[
    (KeyCode::Esc, NONE, Intent::CloseOverlay),
    (KeyCode::Char('q'), NONE, Intent::CloseOverlay),
    (KeyCode::Char('?'), NONE, Intent::CloseOverlay),
    (KeyCode::Char('?'), SHIFT, Intent::CloseOverlay),
    (KeyCode::F(1), NONE, Intent::CloseOverlay),
    (KeyCode::Enter, NONE, Intent::CloseOverlay),
    (KeyCode::Char('c'), CTRL, Intent::Quit),
];

const INPUT: &[Binding] = &[
    (KeyCode::Enter, NONE, Intent::Submit),
    (KeyCode::Left, NONE, Intent::Left),
    (KeyCode::Right, NONE, Intent::Right),
    (KeyCode::Home, NONE, Intent::Home),
    (KeyCode::End, NONE, Intent::End),
    (KeyCode::Char('a'), CTRL, Intent::Home),
    (KeyCode::Char('e'), CTRL, Intent::End),
    (KeyCode::Backspace, NONE, Intent::Backspace),
    (KeyCode::Delete, NONE, Intent::Delete),
    (KeyCode::Char('u'), CTRL, Intent::ClearLine),
    (KeyCode::Up, NONE, Intent::HistoryUp),
    (KeyCode::Down, NONE, Intent::HistoryDown),
    (KeyCode::PageUp, NONE, Intent::PageUp),
    (KeyCode::PageDown, NONE, Intent::PageDown),
];

const MESSAGES: &[Binding] = &[
    (KeyCode::Up, NONE, Intent::ScrollUp),
    (KeyCode::Down, NONE, Intent::ScrollDown),
    (KeyCode::PageUp, NONE, Intent::PageUp),
    (KeyCode::PageDown, NONE, Intent::PageDown),
    (KeyCode::Home, NONE, Intent::Top),
    (KeyCode::End, NONE, Intent::Bottom),
    (KeyCode::Char('?'), NONE, Intent::Help),
    (KeyCode::Char('?'), SHIFT, Intent::Help),
    (KeyCode::Esc, NONE, Intent::CloseOverlay),
];

/// `a`, `r`, `d` and `x` act on the selected file when it can take that action (the app is
/// asked; a letter that cannot act is typed); `d`, `x` and Delete are asked about first.
const QUEUE: &[Binding] = &[
    (KeyCode::Up, NONE, Intent::SelectUp),
    (KeyCode::Down, NONE, Intent::SelectDown),
    (KeyCode::Home, NONE, Intent::SelectFirst),
    (KeyCode::End, NONE, Intent::SelectLast),
    (KeyCode::Char('a'), NONE, Intent::Accept),
    (KeyCode::Enter, NONE, Intent::Accept),
    (KeyCode::Char('d'), NONE, Intent::Reject),
    (KeyCode::Char('x'), NONE, Intent::Cancel),
    (KeyCode::Delete, NONE, Intent::Cancel),
    (KeyCode::Char('r'), NONE, Intent::Retry),
    (KeyCode::Right, NONE, Intent::Expand),
    (KeyCode::Left, NONE, Intent::Collapse),
    (KeyCode::PageUp, NONE, Intent::PageUp),
    (KeyCode::PageDown, NONE, Intent::PageDown),
    (KeyCode::Char('?'), NONE, Intent::Help),
    (KeyCode::Char('?'), SHIFT, Intent::Help),
    (KeyCode::Esc, NONE, Intent::CloseOverlay),
];

const PEERS: &[Binding] = &[
    (KeyCode::Up, NONE, Intent::PeerUp),
    (KeyCode::Down, NONE, Intent::PeerDown),
    (KeyCode::Enter, NONE, Intent::DialOpen),
    (KeyCode::Char('?'), NONE, Intent::Help),
    (KeyCode::Char('?'), SHIFT, Intent::Help),
    (KeyCode::Esc, NONE, Intent::CloseOverlay),
];

const EVERYWHERE: &[Binding] = &[
    (KeyCode::Char('n'), CTRL, Intent::NextConversation),
    (KeyCode::Char('p'), CTRL, Intent::PrevConversation),
    (KeyCode::Char('a'), ALT, Intent::NextUnread),
    (KeyCode::Char('A'), ALT, Intent::NextUnread),
    (KeyCode::Char('A'), ALT.union(SHIFT), Intent::NextUnread),
    (KeyCode::Char('c'), CTRL, Intent::Quit),
    (KeyCode::Char('q'), CTRL, Intent::Quit),
    (KeyCode::F(1), NONE, Intent::Help),
    // End itself moves the input cursor or selects the last file outside the message pane.
    (KeyCode::End, CTRL, Intent::Bottom),
    (KeyCode::Tab, NONE, Intent::FocusNext),
    (KeyCode::BackTab, SHIFT, Intent::FocusPrev),
    (KeyCode::BackTab, NONE, Intent::FocusPrev),
];

fn lookup(table: &[Binding], key: &KeyEvent) -> Option<Intent> {
    table
        .iter()
        .find(|(code, mods, _)| *code == key.code && *mods == key.modifiers)
        .map(|(_, _, intent)| *intent)
}

/// The intent of `key` in `cx`, if any.
pub fn intent(key: &KeyEvent, cx: KeyContext) -> Option<Intent> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if cx.confirm_open {
        return lookup(CONFIRM, key);
    }
    if cx.prompt_open {
        return lookup(PROMPT, key);
    }
    if cx.help_open {
        return lookup(HELP, key);
    }
    if key.modifiers == ALT
        && let KeyCode::Char(c @ '0'..='9') = key.code
    {
        return Some(Intent::OpenNumber(c as u8 - b'0'));
    }
    if let Some(intent) = lookup(pane_table(cx.focus), key).or_else(|| lookup(EVERYWHERE, key)) {
        return Some(intent);
    }
    if let Some(c) = typed_char(key) {
        // `?` on an empty line opens help; anywhere else it is just a character.
        if c == '?' && cx.input_empty {
            return Some(Intent::Help);
        }
        return Some(Intent::Insert(c));
    }
    if cx.focus == Focus::Input && key.code == KeyCode::Esc {
        return Some(Intent::CloseOverlay);
    }
    None
}

/// The name of the first key that means `intent` in `focus`, for hints on screen, so that a hint
/// names a key that does it there.
pub fn key_for(intent: Intent, focus: Focus) -> Option<String> {
    let (code, mods, _) = pane_table(focus)
        .iter()
        .chain(EVERYWHERE)
        .find(|(_, _, i)| *i == intent)?;
    let name = match code {
        KeyCode::End => "End".to_string(),
        KeyCode::Home => "Home".to_string(),
        KeyCode::PageUp => "PgUp".to_string(),
        KeyCode::PageDown => "PgDn".to_string(),
        KeyCode::Enter => "Enter".to_string(),
        KeyCode::Esc => "Esc".to_string(),
        KeyCode::Tab => "Tab".to_string(),
        KeyCode::Delete => "Delete".to_string(),
        KeyCode::F(n) => format!("F{n}"),
        KeyCode::Char(c) => c.to_string(),
        other => format!("{other:?}"),
    };
    Some(if mods.contains(CTRL) {
        format!("Ctrl-{name}")
    } else if mods.contains(ALT) {
        format!("Alt-{name}")
    } else {
        name
    })
}

fn pane_table(focus: Focus) -> &'static [Binding] {
    match focus {
        Focus::Input => INPUT,
        Focus::Messages => MESSAGES,
        Focus::Queue => QUEUE,
        Focus::Peers => PEERS,
    }
}

/// The character `key` types, if it is one that types (no Ctrl or Alt).
pub fn typed_char(key: &KeyEvent) -> Option<char> {
    match key.code {
        KeyCode::Char(c)
            if !key
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
        {
            Some(c)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    fn cx(focus: Focus) -> KeyContext {
        KeyContext {
            focus,
            input_empty: true,
            ..KeyContext::default()
        }
    }

    #[test]
    fn letters_type_in_the_input_but_act_in_the_queue() {
        let a = key(KeyCode::Char('a'), NONE);
        assert_eq!(intent(&a, cx(Focus::Input)), Some(Intent::Insert('a')));
        assert_eq!(intent(&a, cx(Focus::Queue)), Some(Intent::Accept));
        let shifted = key(KeyCode::Char('A'), SHIFT);
        assert_eq!(
            intent(&shifted, cx(Focus::Input)),
            Some(Intent::Insert('A'))
        );
    }

    #[test]
    fn letters_no_pane_claims_are_typed_from_every_pane() {
        let o = key(KeyCode::Char('o'), NONE);
        for focus in [Focus::Input, Focus::Messages, Focus::Queue] {
            assert_eq!(intent(&o, cx(focus)), Some(Intent::Insert('o')));
        }
        let j = key(KeyCode::Char('j'), NONE);
        assert_eq!(intent(&j, cx(Focus::Messages)), Some(Intent::Insert('j')));
        assert_eq!(intent(&j, cx(Focus::Queue)), Some(Intent::Insert('j')));
    }

    #[test]
    fn a_file_prompt_takes_yes_and_no_and_nothing_else() {
        let prompt = KeyContext {
            prompt_open: true,
            ..cx(Focus::Queue)
        };
        let y = key(KeyCode::Char('y'), NONE);
        assert_eq!(intent(&y, prompt), Some(Intent::Confirm));
        let esc = key(KeyCode::Esc, NONE);
        assert_eq!(intent(&esc, prompt), Some(Intent::Deny));
        let ctrl_c = key(KeyCode::Char('c'), CTRL);
        assert_eq!(intent(&ctrl_c, prompt), None);
        assert_eq!(intent(&key(KeyCode::Char('o'), NONE), prompt), None);
    }

    #[test]
    fn question_mark_opens_help_only_on_an_empty_line() {
        let q = key(KeyCode::Char('?'), NONE);
        assert_eq!(intent(&q, cx(Focus::Input)), Some(Intent::Help));
        let typing = KeyContext {
            input_empty: false,
            ..cx(Focus::Input)
        };
        assert_eq!(intent(&q, typing), Some(Intent::Insert('?')));
        assert_eq!(
            intent(&key(KeyCode::F(1), NONE), typing),
            Some(Intent::Help)
        );
    }

    #[test]
    fn overlays_take_keys_first() {
        let help = KeyContext {
            help_open: true,
            ..cx(Focus::Input)
        };
        assert_eq!(
            intent(&key(KeyCode::Esc, NONE), help),
            Some(Intent::CloseOverlay)
        );
        assert_eq!(intent(&key(KeyCode::Char('a'), NONE), help), None);
        let confirm = KeyContext {
            confirm_open: true,
            ..cx(Focus::Queue)
        };
        assert_eq!(
            intent(&key(KeyCode::Char('y'), NONE), confirm),
            Some(Intent::Confirm)
        );
    }

    #[test]
    fn the_bottom_of_the_messages_has_a_key_in_every_pane() {
        assert_eq!(
            key_for(Intent::Bottom, Focus::Messages).as_deref(),
            Some("End")
        );
        for focus in [Focus::Input, Focus::Queue] {
            let name = key_for(Intent::Bottom, focus);
            assert_eq!(name.as_deref(), Some("Ctrl-End"));
            let ctrl_end = key(KeyCode::End, CTRL);
            assert_eq!(intent(&ctrl_end, cx(focus)), Some(Intent::Bottom));
        }
    }

    #[test]
    fn conversations_switch_from_every_pane() {
        for focus in [Focus::Input, Focus::Messages, Focus::Queue, Focus::Peers] {
            let alt = |c| intent(&key(KeyCode::Char(c), ALT), cx(focus));
            assert_eq!(alt('1'), Some(Intent::OpenNumber(1)));
            assert_eq!(alt('9'), Some(Intent::OpenNumber(9)));
            assert_eq!(alt('0'), Some(Intent::OpenNumber(0)));
            assert_eq!(alt('a'), Some(Intent::NextUnread));
            let ctrl = |c| intent(&key(KeyCode::Char(c), CTRL), cx(focus));
            assert_eq!(ctrl('n'), Some(Intent::NextConversation));
            assert_eq!(ctrl('p'), Some(Intent::PrevConversation));
        }
    }

    #[test]
    fn tab_reaches_the_peer_list_only_while_it_is_shown() {
        assert_eq!(Focus::Queue.next(true), Focus::Peers);
        assert_eq!(Focus::Peers.next(true), Focus::Input);
        assert_eq!(Focus::Queue.next(false), Focus::Input);
        assert_eq!(Focus::Input.prev(true), Focus::Peers);
        assert_eq!(Focus::Input.prev(false), Focus::Queue);
    }

    #[test]
    fn ctrl_c_quits_from_every_pane() {
        let c = key(KeyCode::Char('c'), CTRL);
        for focus in [Focus::Input, Focus::Messages, Focus::Queue] {
            assert_eq!(intent(&c, cx(focus)), Some(Intent::Quit));
        }
    }
}
