#pragma once
// Where a record's time goes: a sample of Kafka records (1 in trace_every, by offset) carries
// timestamps through the pipeline, and each stage it reaches adds the time since the message was
// produced (its Kafka timestamp) to that stage's histogram. /metrics shows them as
// sluice_record_stage_seconds{stage}; the benchmark prints the breakdown.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "sluice/core/record.hpp"

namespace sluice {

/// The stages a traced record passes, in order.
enum class trace_stage : unsigned char {
    consumed,   // handed over by librdkafka to the consumer thread
    parsed,     // a record, queued for the store writer
    batched,    // taken into a batch by the store writer
    memory,     // its batch is in the memory index (readable)
    committed,  // its batch is durable in PostgreSQL
    redis,      // its batch is in Redis
};
inline constexpr std::size_t trace_stage_count = 6;

/// "consumed", "parsed", …
const char* to_string(trace_stage s);

/// One in this many Kafka records is traced.
inline constexpr std::int64_t trace_every = 64;

/// True for the Kafka records that are traced.
inline bool traced(const record_source& src) { return src.from_kafka() && src.offset % trace_every == 0; }

/// Microseconds since the Unix epoch (system clock: comparable with Kafka's timestamps).
inline std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// The histograms: per stage, counts per bucket of seconds since produced, and their sum. Written
/// by the stage's thread, read by /metrics; lock-free.
class stage_trace {
public:
    /// Upper bounds of the buckets, in seconds (a last one, +Inf, takes the rest).
    static constexpr std::array<double, 14> bounds = {0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,
                                                      0.064,  0.128, 0.256, 0.512, 1.024, 2.048, 4.096};
    static constexpr std::size_t buckets = bounds.size() + 1;

    /// The record produced at produced_ms (epoch ms) reached `stage` at at_us (epoch µs).
    void observe(trace_stage stage, std::int64_t produced_ms, std::int64_t at_us) {
        if (produced_ms < 0) return;
        std::int64_t us = at_us - produced_ms * 1000;
        if (us < 0) us = 0;  // clocks of producer and consumer a little apart
        const double seconds = static_cast<double>(us) / 1e6;
        std::size_t b = 0;
        while (b < bounds.size() && seconds > bounds[b]) ++b;
        auto& h = stages_[static_cast<std::size_t>(stage)];
        h.counts[b].fetch_add(1, std::memory_order_relaxed);
        h.sum_us.fetch_add(static_cast<std::uint64_t>(us), std::memory_order_relaxed);
    }

    std::uint64_t count(trace_stage stage, std::size_t bucket) const {
        return stages_[static_cast<std::size_t>(stage)].counts[bucket].load(std::memory_order_relaxed);
    }
    std::uint64_t sum_us(trace_stage stage) const {
        return stages_[static_cast<std::size_t>(stage)].sum_us.load(std::memory_order_relaxed);
    }

private:
    struct histogram {
        std::array<std::atomic<std::uint64_t>, buckets> counts{};
        std::atomic<std::uint64_t> sum_us{0};
    };
    std::array<histogram, trace_stage_count> stages_;
};

}  // namespace sluice
