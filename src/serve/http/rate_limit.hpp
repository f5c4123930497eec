#pragma once
// Per-client token buckets for http.rate_limit: each client (an API key's name, or a remote
// address when auth is off) may make `burst` requests at once and `requests_per_sec` on average.
// One instance per server, owned by the dispatcher and called from every io thread: buckets are
// split over a few mutex-guarded shards. Memory is bounded: a bucket that has refilled (its client
// has been idle) is dropped, and at capacity the least recently used one makes room.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::serve {

class rate_limiter {
public:
    using clock = std::chrono::steady_clock;

    /// requests_per_sec > 0, burst >= 1; max_clients is the most buckets kept at once.
    rate_limiter(double requests_per_sec, double burst, std::size_t max_clients);
    rate_limiter(const rate_limiter&) = delete;
    rate_limiter& operator=(const rate_limiter&) = delete;

    /// Takes a token for the client: 0 when the request may go ahead, else the whole number of
    /// seconds (at least 1) after which a token will be there again (for Retry-After).
    std::uint32_t acquire(std::string_view client, clock::time_point now);

    /// Buckets held now (for tests).
    std::size_t clients() const;

private:
    struct bucket {
        std::string client;
        double tokens = 0;
        clock::time_point last;
    };
    // Least recently used first; the index points into the list (list nodes never move, so the
    // keys, views of bucket::client, stay valid).
    struct shard {
        mutable std::mutex mutex;
        std::list<bucket> lru;
        std::unordered_map<std::string_view, std::list<bucket>::iterator> index;
    };
    static constexpr std::size_t shard_count = 8;

    void evict_front(shard& s);

    const double rate_;
    const double burst_;
    const clock::duration refill_time_;  // from empty to full: an idle bucket older than this is full
    const std::size_t max_per_shard_;
    std::array<shard, shard_count> shards_;
};

}  // namespace sluice::serve
