//! The record layer's cost: sealing and opening 1 MiB of file data as full records (AES-GCM
//! through ring), against BLAKE3 hashing the same MiB, which every transfer already pays on both
//! ends. Issue 21's bulk target (≥ 0.8× plaintext socat) rests on this staying well under it.

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tern::crypto::noise::Secured;

fn pair() -> (Secured, Secured) {
    tern::harness::secured_pair()
}

fn records(c: &mut Criterion) {
    let data: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut group = c.benchmark_group("1 MiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    let (mut a, mut b) = pair();
    let mut wire = BytesMut::with_capacity(2 << 20);
    let mut plain = BytesMut::with_capacity(2 << 20);
    group.bench_function("seal and open (AES-GCM records)", |bench| {
        bench.iter(|| {
            wire.clear();
            plain.clear();
            a.sealer.seal(&data, &mut wire).expect("seal");
            while b.opener.open(&mut wire, &mut plain).expect("open") {}
            assert_eq!(plain.len(), data.len());
        });
    });
    group.bench_function("BLAKE3 (for comparison)", |bench| {
        bench.iter(|| blake3::hash(&data));
    });
    group.bench_function("handshake (three messages, both sides)", |bench| {
        bench.iter(pair);
    });
    group.finish();
}

criterion_group!(benches, records);
criterion_main!(benches);
