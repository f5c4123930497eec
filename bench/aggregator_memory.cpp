// Memory and throughput of the aggregation state (issue 4, item 8): 1M keys x 3 aggregations
// (spend_sum_1h, clicks_count_7d, spend_max_1h) with a few events per key. Prints what the
// aggregator says it holds (memory_bytes) and what the process really grew by (VmRSS).
//
//   sluice_bench_aggregator [--keys N] [--events-per-key E] [--shards S]

#include "sluice/preprocess/aggregator.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

// Resident set size of this process in bytes, from /proc/self/status.
std::size_t rss_bytes() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    return 0;
}

double mib(std::size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

sluice::field_config field(const char* name, sluice::field_type type) {
    sluice::field_config f;
    f.name = name;
    f.type = type;
    return f;
}

sluice::aggregation_config agg(const char* name, const char* f, std::size_t index, sluice::agg_op op,
                               std::int64_t window_ms) {
    sluice::aggregation_config a;
    a.name = name;
    a.field = f;
    a.field_index = index;
    a.op = op;
    a.window_ms = window_ms;
    return a;
}

// "user:0000042": 12 characters, like a typical short entity id.
void key_of(std::string& out, std::size_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "user:%07zu", i);
    out.assign(buf);
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t keys = 1000000, per_key = 4, shards = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--keys")) keys = std::strtoull(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--events-per-key")) per_key = std::strtoull(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--shards")) shards = std::strtoull(argv[i + 1], nullptr, 10);
        else {
            std::fprintf(stderr, "usage: %s [--keys N] [--events-per-key E] [--shards S]\n", argv[0]);
            return 2;
        }
    }
    constexpr std::int64_t minute = 60000, hour = 60 * minute, day = 24 * hour;
    constexpr std::int64_t t0 = 1767225600000;  // 2026-01-01T00:00:00Z

    sluice::feature_set_config set;
    set.name = "user_activity";
    set.fields = {field("clicks", sluice::field_type::int64), field("spend", sluice::field_type::float64)};
    set.aggregations = {agg("spend_sum_1h", "spend", 1, sluice::agg_op::sum, hour),
                        agg("clicks_count_7d", "clicks", 0, sluice::agg_op::count, 7 * day),
                        agg("spend_max_1h", "spend", 1, sluice::agg_op::max, hour)};
    const std::size_t n_aggs = set.aggregations.size();

    const std::size_t rss_before = rss_bytes();
    sluice::aggregator aggregator(set, shards);

    // Events in rounds over every key (so each key's events arrive in order, keys interleaved),
    // 20-90 s apart: a few one-minute tiles of the 1h windows, one tile of the 7d window.
    std::mt19937_64 rng(42);
    std::vector<std::int64_t> offsets(keys);
    for (auto& o : offsets) o = static_cast<std::int64_t>(rng() % hour);
    std::vector<sluice::value> values(2);
    std::string key;
    std::size_t events = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t round = 0; round < per_key; ++round) {
        for (std::size_t i = 0; i < keys; ++i) {
            key_of(key, i);
            offsets[i] += 20000 + static_cast<std::int64_t>(rng() % 70000);
            values[0] = static_cast<std::int64_t>(rng() % 10);
            values[1] = static_cast<double>(rng() % 10000) / 100.0;
            aggregator.add(key, t0 + offsets[i], values);
            ++events;
        }
    }
    const double add_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::vector<std::int64_t>().swap(offsets);
    const std::size_t rss_after = rss_bytes();

    // Reads at "now", as the HTTP path does.
    const std::size_t reads = std::min<std::size_t>(keys, 1000000);
    std::size_t non_empty = 0;
    const auto read_start = std::chrono::steady_clock::now();
    for (std::size_t r = 0; r < reads; ++r) {
        key_of(key, rng() % keys);
        const auto v = aggregator.values_at(key, t0 + 2 * hour);
        non_empty += std::get<std::int64_t>(v[1]) > 0;
    }
    const double read_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - read_start).count();

    const std::size_t held = aggregator.memory_bytes();
    const std::size_t grown = rss_after > rss_before ? rss_after - rss_before : 0;
    const double n = static_cast<double>(aggregator.keys());
    std::printf("aggregator memory benchmark\n");
    std::printf("  aggregations        %zu (spend_sum_1h, clicks_count_7d, spend_max_1h), %zu shards\n", n_aggs,
                shards);
    std::printf("  keys                %zu\n", aggregator.keys());
    std::printf("  events              %zu (%zu per key)\n", events, per_key);
    std::printf("  memory_bytes()      %.1f MiB = %.1f B/key = %.1f B/key/aggregation\n", mib(held),
                static_cast<double>(held) / n, static_cast<double>(held) / n / static_cast<double>(n_aggs));
    std::printf("  VmRSS before/after  %.1f MiB / %.1f MiB (+%.1f MiB = %.1f B/key = %.1f B/key/aggregation)\n",
                mib(rss_before), mib(rss_after), mib(grown), static_cast<double>(grown) / n,
                static_cast<double>(grown) / n / static_cast<double>(n_aggs));
    std::printf("  add                 %.2f s, %.0f events/s (one writer thread)\n", add_s,
                static_cast<double>(events) / add_s);
    std::printf("  values_at           %.2f s, %.0f reads/s (one thread; %zu of %zu with clicks in 7d)\n", read_s,
                static_cast<double>(reads) / read_s, non_empty, reads);
    std::printf("  at 1M keys x 3 aggregations: %.0f MiB estimated, %.0f MiB resident\n",
                static_cast<double>(held) / n * 1e6 / (1024.0 * 1024.0),
                static_cast<double>(grown) / n * 1e6 / (1024.0 * 1024.0));
    return 0;
}
