//! Time to draw the main view with a long history: 100,000 messages (Chinese and English, some
//! wrapping) and 1,000 queue rows, at 160×48, into ratatui's TestBackend. Also the cost of a
//! resize, which re-measures every message at the new width.

use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use tern::text::Encoding;
use tern::transfer::{Progress, TransferId, TransferState};
use tern::tui::app::{App, Listening, Row, RowKey};
use tern::tui::transcript::MessageKind;
use tern::tui::view;

fn busy_app() -> App {
    let mut app = App::new(
        "me".into(),
        Encoding::Utf8,
        Some(Listening {
            addresses: vec!["192.168.1.5".into()],
            port: 8989,
        }),
        || "12:00".into(),
    );
    for i in 0..100_000u32 {
        let text = match i % 3 {
            0 => format!(
                "message {i}: 你好，这是一条比较长的中文消息，用来测试按字符宽度换行的效果。"
            ),
            1 => format!(
                "message {i}: a longer English line that will wrap at a word boundary when the pane is narrow enough"
            ),
            _ => format!("short {i}"),
        };
        let kind = if i % 2 == 0 {
            MessageKind::Peer
        } else {
            MessageKind::Mine
        };
        app.push(kind, "ana", text);
    }
    for i in 0..1000u32 {
        let state = match i % 4 {
            0 => TransferState::Transferring,
            1 => TransferState::Verified,
            2 => TransferState::Offered,
            _ => TransferState::Failed("connection lost".into()),
        };
        app.conv_mut().queue.push(
            Row::new(
                RowKey::Transfer(TransferId::outgoing(i)),
                &format!("photos/2024/img_{i:05}.jpg"),
                state,
                Progress {
                    done: u64::from(i) * 1000,
                    total: 4_000_000,
                },
            )
            .with_speed(50e6),
        );
    }
    app
}

fn fit(app: &mut App, width: u16, height: u16) {
    if let Some(areas) = view::areas(Rect::new(0, 0, width, height), app.conv().queue.len()) {
        let (w, h) = view::inner(areas.messages);
        app.set_viewport(w, h);
    }
}

fn render(c: &mut Criterion) {
    let mut app = busy_app();
    fit(&mut app, 160, 48);
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("terminal");
    c.bench_function("draw 160x48, 100k messages, 1k rows", |b| {
        b.iter(|| {
            terminal
                .draw(|frame| view::draw(&app, frame))
                .expect("draw");
        });
    });
    app.conv_mut().transcript.scroll_up(50_000, 40);
    c.bench_function("draw scrolled half way up", |b| {
        b.iter(|| {
            terminal
                .draw(|frame| view::draw(&app, frame))
                .expect("draw");
        });
    });
    let mut wide = true;
    c.bench_function("resize (re-measure 100k messages)", |b| {
        b.iter(|| {
            wide = !wide;
            fit(&mut app, if wide { 160 } else { 120 }, 48);
        });
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
