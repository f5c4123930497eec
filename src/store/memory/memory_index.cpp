#include "sluice/store/memory_index.hpp"

#include <functional>
#include <mutex>

namespace sluice {

memory_index::memory_index(std::size_t feature_sets, std::size_t shards) : shards_per_set_(shards) {
    shards_.reserve(feature_sets * shards);
    for (std::size_t i = 0; i < feature_sets * shards; ++i) shards_.push_back(std::make_unique<shard>());
}

memory_index::shard& memory_index::shard_for(std::uint32_t set_index, const std::string& key) const {
    const std::size_t h = std::hash<std::string>{}(key);
    return *shards_[set_index * shards_per_set_ + h % shards_per_set_];
}

bool memory_index::upsert(std::uint32_t set_index, std::shared_ptr<const latest_entry> entry) {
    auto& s = shard_for(set_index, entry->key);
    std::unique_lock lock(s.mutex);
    auto [it, inserted] = s.entries.try_emplace(entry->key, entry);
    if (inserted) return true;
    // Same rule as PostgreSQL and Redis: only a strictly newer event replaces the entry, so a
    // re-delivered message (same event time) changes nothing.
    if (it->second->event_time_ms >= entry->event_time_ms) return false;
    it->second = std::move(entry);
    return true;
}

std::shared_ptr<const latest_entry> memory_index::find(std::uint32_t set_index, const std::string& key) const {
    auto& s = shard_for(set_index, key);
    std::shared_lock lock(s.mutex);
    auto it = s.entries.find(key);
    return it == s.entries.end() ? nullptr : it->second;
}

std::size_t memory_index::size(std::uint32_t set_index) const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < shards_per_set_; ++i) {
        auto& s = *shards_[set_index * shards_per_set_ + i];
        std::shared_lock lock(s.mutex);
        n += s.entries.size();
    }
    return n;
}

std::size_t memory_index::evict_partitions(std::uint32_t set_index, const std::vector<std::int32_t>& partitions) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < shards_per_set_; ++i) {
        auto& s = *shards_[set_index * shards_per_set_ + i];
        std::unique_lock lock(s.mutex);
        n += std::erase_if(s.entries, [&](const auto& kv) {
            return std::find(partitions.begin(), partitions.end(), kv.second->partition) != partitions.end();
        });
    }
    return n;
}

void memory_index::for_each(std::uint32_t set_index, const std::function<void(const latest_entry&)>& fn) const {
    for (std::size_t i = 0; i < shards_per_set_; ++i) {
        auto& s = *shards_[set_index * shards_per_set_ + i];
        std::shared_lock lock(s.mutex);
        for (const auto& kv : s.entries) fn(*kv.second);
    }
}

}  // namespace sluice
