// Package bench holds psimatch's benchmarks: the floor of circl's own group
// operations, the per-identifier costs of both sides of a match, the
// once-per-epoch precompute, the parallel speed-up, the set codec, the
// verifiable mode and the hashed-matching baseline. It has no API; run it
// with
//
//	go test -bench . ./bench/
//
// Benchmarks are named suite/side/step, with the batch size (n=) and the
// number of cores (cores=) as the last parts, e.g.
// BenchmarkPSI/ristretto255/advertiser/count/n=4096/cores=2.
//
// Every figure is reported beside its ratio to a floor measured in the same
// benchmark, interleaved with it on the same inputs (the machines these run
// on are shared and noisy, so no floor is ever hard-coded):
//
//   - ns/id: wall time per identifier of the operation;
//   - floor-ns/id: the same batch through the bare circl group operations the
//     step cannot avoid (hash to group, scalar multiplications, element
//     encode and decode), on one goroutine, divided by the machine's measured
//     scaling of bare scalar multiplications over the cores used;
//   - x-floor: ns/id ÷ floor-ns/id (wall time, what a user waits for);
//   - x-floor-cpu: process CPU time of the operation ÷ CPU time of the
//     one-core floor: the work done, whatever the load on the machine;
//   - scaling: the machine's own speed-up of bare scalar multiplications on
//     `cores` goroutines over one;
//   - x-hashed: psimatch end to end ÷ the status quo, SHA-256 of normalized
//     identifiers looked up in a Go map (the price of privacy);
//   - x-base: verifiable mode ÷ base mode;
//   - x-entropy: bytes per element of the coded set ÷ the entropy bound;
//   - x-bound (BenchmarkServerMemory): the server's peak memory ÷ (2 × one
//     coded set + 96 MiB), issue 18's bound;
//   - x-sequential (BenchmarkPipeline): the pipelined Client.Match ÷ the
//     sequential client it replaced, interleaved in the same run.
//
// The default run keeps to batches of 1024 and 4096 (16384 for the
// precompute, whose workers take 4096 identifiers at a time, and 2^16 and
// 2^20 for the set codec) and finishes in a few minutes on two cores.
// PSIMATCH_BENCH_LARGE=1 adds larger batches and sets.
//
// README.md beside this file holds the measured table and the command that
// produced it.
package bench
