#include "sluice/store/memory_index.hpp"

#include <cstring>
#include <functional>
#include <mutex>

namespace sluice {

namespace {

enum tag : char { null_tag, int_tag, double_tag, false_tag, true_tag, string_tag };
constexpr std::size_t header_bytes = 8 + 8 + 4;  // event time, ingested at, partition

template <typename T>
void put(std::string& out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
}

template <typename T>
T get(const char*& p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
}

}  // namespace

std::int64_t memory_index::packed::event_time_ms() const {
    const char* p = bytes.get();
    return get<std::int64_t>(p);
}

std::int32_t memory_index::packed::partition() const {
    const char* p = bytes.get() + 16;
    return get<std::int32_t>(p);
}

memory_index::packed memory_index::pack(const latest_entry& e) {
    std::string out;
    out.reserve(header_bytes + e.values.size() * 9);
    put(out, e.event_time_ms);
    put(out, e.ingested_at_ms);
    put(out, e.partition);
    for (const value& v : e.values) {
        switch (v.index()) {
            case 0: out.push_back(null_tag); break;
            case 1: out.push_back(int_tag); put(out, std::get<std::int64_t>(v)); break;
            case 2: out.push_back(double_tag); put(out, std::get<double>(v)); break;
            case 3: out.push_back(std::get<bool>(v) ? true_tag : false_tag); break;
            default: {
                const auto& s = std::get<std::string>(v);
                out.push_back(string_tag);
                put(out, static_cast<std::uint32_t>(s.size()));
                out.append(s);
            }
        }
    }
    packed p;
    p.size = static_cast<std::uint32_t>(out.size());
    p.bytes = std::make_unique_for_overwrite<char[]>(out.size());
    std::memcpy(p.bytes.get(), out.data(), out.size());
    return p;
}

latest_entry memory_index::unpack(const std::string& key, const packed& pk) {
    latest_entry e;
    e.key = key;
    const char* p = pk.bytes.get();
    const char* end = p + pk.size;
    e.event_time_ms = get<std::int64_t>(p);
    e.ingested_at_ms = get<std::int64_t>(p);
    e.partition = get<std::int32_t>(p);
    while (p < end) {
        switch (*p++) {
            case int_tag: e.values.emplace_back(get<std::int64_t>(p)); break;
            case double_tag: e.values.emplace_back(get<double>(p)); break;
            case false_tag: e.values.emplace_back(false); break;
            case true_tag: e.values.emplace_back(true); break;
            case string_tag: {
                const auto n = get<std::uint32_t>(p);
                e.values.emplace_back(std::string(p, n));
                p += n;
                break;
            }
            default: e.values.emplace_back(std::monostate{});
        }
    }
    return e;
}

memory_index::memory_index(std::size_t feature_sets, std::size_t shards) : shards_per_set_(shards) {
    shards_.reserve(feature_sets * shards);
    for (std::size_t i = 0; i < feature_sets * shards; ++i) shards_.push_back(std::make_unique<shard>());
}

memory_index::shard& memory_index::shard_for(std::uint32_t set_index, const std::string& key) const {
    const std::size_t h = std::hash<std::string>{}(key);
    return *shards_[set_index * shards_per_set_ + h % shards_per_set_];
}

bool memory_index::upsert(std::uint32_t set_index, std::shared_ptr<const latest_entry> entry) {
    packed p = pack(*entry);  // outside the lock
    auto& s = shard_for(set_index, entry->key);
    std::unique_lock lock(s.mutex);
    auto [it, inserted] = s.entries.try_emplace(entry->key);
    if (!inserted && it->second.event_time_ms() >= entry->event_time_ms) {
        // Same rule as PostgreSQL and Redis: only a strictly newer event replaces the entry, so a
        // re-delivered message (same event time) changes nothing.
        return false;
    }
    it->second = std::move(p);
    return true;
}

std::shared_ptr<const latest_entry> memory_index::find(std::uint32_t set_index, const std::string& key) const {
    auto& s = shard_for(set_index, key);
    packed copy;
    {
        std::shared_lock lock(s.mutex);
        auto it = s.entries.find(key);
        if (it == s.entries.end()) return nullptr;
        copy.size = it->second.size;
        copy.bytes = std::make_unique_for_overwrite<char[]>(copy.size);
        std::memcpy(copy.bytes.get(), it->second.bytes.get(), copy.size);
    }
    return std::make_shared<const latest_entry>(unpack(key, copy));
}

std::optional<latest_entry> memory_index::find_value(std::uint32_t set_index, const std::string& key) const {
    auto& s = shard_for(set_index, key);
    std::shared_lock lock(s.mutex);
    auto it = s.entries.find(key);
    if (it == s.entries.end()) return std::nullopt;
    return unpack(key, it->second);
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
            return std::find(partitions.begin(), partitions.end(), kv.second.partition()) != partitions.end();
        });
    }
    return n;
}

void memory_index::for_each(std::uint32_t set_index, const std::function<void(const latest_entry&)>& fn) const {
    for (std::size_t i = 0; i < shards_per_set_; ++i) {
        auto& s = *shards_[set_index * shards_per_set_ + i];
        std::shared_lock lock(s.mutex);
        for (const auto& kv : s.entries) fn(unpack(kv.first, kv.second));
    }
}

}  // namespace sluice
