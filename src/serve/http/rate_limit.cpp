#include "rate_limit.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

namespace sluice::serve {

rate_limiter::rate_limiter(double requests_per_sec, double burst, std::size_t max_clients)
    : rate_(requests_per_sec),
      burst_(std::max(1.0, burst)),
      refill_time_(std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(burst_ / rate_))),
      max_per_shard_(std::max<std::size_t>(1, max_clients / shard_count)) {}

void rate_limiter::evict_front(shard& s) {
    s.index.erase(s.lru.front().client);
    s.lru.pop_front();
}

std::uint32_t rate_limiter::acquire(std::string_view client, clock::time_point now) {
    shard& s = shards_[std::hash<std::string_view>{}(client) % shard_count];
    std::lock_guard lock(s.mutex);

    // Drop a couple of buckets whose clients have been idle long enough to be full again:
    // forgetting them changes nothing, and the work per call stays small.
    for (int i = 0; i < 2 && !s.lru.empty() && now - s.lru.front().last >= refill_time_; ++i) {
        if (s.lru.front().client == client) break;
        evict_front(s);
    }

    bucket* b = nullptr;
    if (auto it = s.index.find(client); it != s.index.end()) {
        s.lru.splice(s.lru.end(), s.lru, it->second);  // now the most recently used
        b = &*it->second;
        const double elapsed = std::chrono::duration<double>(now - b->last).count();
        if (elapsed > 0) b->tokens = std::min(burst_, b->tokens + elapsed * rate_);
        b->last = std::max(b->last, now);
    } else {
        if (s.index.size() >= max_per_shard_) evict_front(s);
        s.lru.push_back(bucket{std::string(client), burst_, now});
        b = &s.lru.back();
        s.index.emplace(b->client, std::prev(s.lru.end()));
    }

    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    const double wait = std::ceil((1.0 - b->tokens) / rate_);
    return static_cast<std::uint32_t>(std::clamp(wait, 1.0, 86400.0));
}

std::size_t rate_limiter::clients() const {
    std::size_t n = 0;
    for (const shard& s : shards_) {
        std::lock_guard lock(s.mutex);
        n += s.index.size();
    }
    return n;
}

}  // namespace sluice::serve
