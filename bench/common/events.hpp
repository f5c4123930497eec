#pragma once
// The events the benchmarks feed the daemon, and the feature sets they belong to (the configs
// scripts/bench.sh writes declare the same fields).
//
//  - "kv":   10 fields of about 200 bytes as JSON (3 int, 3 double, 4 strings of 20 characters),
//            the shape of the serving, ingest, freshness and memory rows;
//  - "wide": 250 double fields, the Feast-compatible row's 1 entity x 250 features.
// Keys are 12-digit zero-padded numbers ("000000012345"), the form redis-benchmark's
// __rand_int__ takes, so that the reference reads the very hashes the daemon wrote.

#include <cstdint>
#include <cstdio>
#include <string>

namespace sluice::bench {

inline std::string key_of(std::uint64_t i) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%012llu", static_cast<unsigned long long>(i));
    return buf;
}

/// A cheap deterministic pseudo-random stream (splitmix64).
struct mix64 {
    std::uint64_t state;
    std::uint64_t next() {
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
};

/// Appends the values of a "kv" event (the JSON members after the key and the time, without
/// braces). `c0` is the first int field; the freshness probe sets it to its sequence number.
inline void append_kv_values(std::string& out, mix64& rnd, std::int64_t c0) {
    char buf[256];
    const auto r = [&rnd] { return rnd.next(); };
    int n = std::snprintf(buf, sizeof buf, "\"c0\":%lld,\"c1\":%llu,\"c2\":%llu,\"d0\":%.4f,\"d1\":%.4f,\"d2\":%.4f",
                          static_cast<long long>(c0), static_cast<unsigned long long>(r() % 10000000),
                          static_cast<unsigned long long>(r() % 10000000), static_cast<double>(r() % 100000000) / 1e4,
                          static_cast<double>(r() % 100000000) / 1e4, static_cast<double>(r() % 100000000) / 1e4);
    out.append(buf, static_cast<std::size_t>(n));
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int s = 0; s < 4; ++s) {
        out.append(",\"s").append(1, static_cast<char>('0' + s)).append("\":\"");
        std::uint64_t bits = r();
        for (int c = 0; c < 20; ++c) {
            if (c == 10) bits = r();
            out.push_back(alphabet[bits % 62]);
            bits /= 62;
        }
        out.push_back('"');
    }
}

/// A whole "kv" event: {"id":"<key>","ts":<epoch ms>,<values>}.
inline std::string kv_event(const std::string& key, std::int64_t ts_ms, mix64& rnd, std::int64_t c0) {
    std::string out;
    out.reserve(256);
    out.append("{\"id\":\"").append(key).append("\",\"ts\":").append(std::to_string(ts_ms)).append(",");
    append_kv_values(out, rnd, c0);
    out.push_back('}');
    return out;
}

/// A whole "wide" event: 250 doubles w0..w249.
inline std::string wide_event(const std::string& key, std::int64_t ts_ms, mix64& rnd) {
    std::string out;
    out.reserve(4096);
    out.append("{\"id\":\"").append(key).append("\",\"ts\":").append(std::to_string(ts_ms));
    char buf[64];
    for (int i = 0; i < 250; ++i) {
        const int n = std::snprintf(buf, sizeof buf, ",\"w%d\":%.3f", i, static_cast<double>(rnd.next() % 1000000) / 1e3);
        out.append(buf, static_cast<std::size_t>(n));
    }
    out.push_back('}');
    return out;
}

}  // namespace sluice::bench
