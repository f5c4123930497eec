#include "sluice/store/memory_index.hpp"

#include <cstring>
#include <functional>
#include <mutex>
#include <utility>

namespace sluice {

namespace {

enum tag : char { null_tag, int_tag, double_tag, false_tag, true_tag, string_tag };
constexpr std::size_t header_bytes = 8 + 8 + 4;  // event time, ingested at, partition

template <typename T>
void put(char*& out, T v) {
    std::memcpy(out, &v, sizeof(T));
    out += sizeof(T);
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

memory_index::packed memory_index::pack(const entry_ref& e) {
    // Measured first, so the buffer is allocated once at its size.
    std::size_t size = header_bytes;
    for (const value& v : e.values) {
        if (const auto* s = std::get_if<std::string>(&v))
            size += 1 + 4 + s->size();
        else
            size += std::holds_alternative<std::int64_t>(v) || std::holds_alternative<double>(v) ? 9 : 1;
    }
    packed p;
    p.size = static_cast<std::uint32_t>(size);
    p.bytes = std::make_unique_for_overwrite<char[]>(size);
    char* out = p.bytes.get();
    put(out, e.event_time_ms);
    put(out, e.ingested_at_ms);
    put(out, e.partition);
    for (const value& v : e.values) {
        switch (v.index()) {
            case 0: *out++ = null_tag; break;
            case 1: *out++ = int_tag; put(out, std::get<std::int64_t>(v)); break;
            case 2: *out++ = double_tag; put(out, std::get<double>(v)); break;
            case 3: *out++ = std::get<bool>(v) ? true_tag : false_tag; break;
            default: {
                const auto& s = std::get<std::string>(v);
                *out++ = string_tag;
                put(out, static_cast<std::uint32_t>(s.size()));
                std::memcpy(out, s.data(), s.size());
                out += s.size();
            }
        }
    }
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

std::uint64_t memory_index::hash_of(const std::string& key) {
    const std::uint64_t h = std::hash<std::string>{}(key);
    return h == 0 ? 1 : h;
}

// The shard comes from the hash's top bits and the slot from its low bits, so that the keys of
// one shard still spread over all of its slots.
memory_index::shard& memory_index::shard_for(std::uint32_t set_index, std::uint64_t hash) const {
    return *shards_[set_index * shards_per_set_ + (hash >> 40) % shards_per_set_];
}

const memory_index::slot* memory_index::shard::find(std::uint64_t hash, const std::string& key) const {
    if (slots.empty()) return nullptr;
    const std::size_t mask = slots.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        const slot& s = slots[i];
        if (s.hash == 0) return nullptr;
        if (s.hash == hash && s.key == key) return &s;
    }
}

std::pair<memory_index::slot*, bool> memory_index::shard::find_or_claim(std::uint64_t hash, const std::string& key) {
    if ((used + 1) * 8 > slots.size() * 5) grow();
    const std::size_t mask = slots.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        slot& s = slots[i];
        if (s.hash == hash && s.key == key) return {&s, false};
        if (s.hash == 0) {
            s.hash = hash;
            s.key = key;
            ++used;
            return {&s, true};
        }
    }
}

void memory_index::shard::grow() {
    std::vector<slot> old(std::max<std::size_t>(16, slots.size() * 2));
    old.swap(slots);
    const std::size_t mask = slots.size() - 1;
    for (slot& s : old) {
        if (s.hash == 0) continue;
        std::size_t i = s.hash & mask;
        while (slots[i].hash != 0) i = (i + 1) & mask;
        slots[i] = std::move(s);
    }
}

// Backward shift: each later slot of the run moves into the hole unless its home lies
// (cyclically) after the hole, so every key stays reachable from its home without tombstones.
void memory_index::shard::erase(slot& gone) {
    const std::size_t mask = slots.size() - 1;
    std::size_t hole = static_cast<std::size_t>(&gone - slots.data());
    for (std::size_t j = (hole + 1) & mask; slots[j].hash != 0; j = (j + 1) & mask) {
        const std::size_t home = slots[j].hash & mask;
        const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays) continue;
        slots[hole] = std::move(slots[j]);
        hole = j;
    }
    slots[hole] = slot{};
    --used;
}

bool memory_index::upsert(std::uint32_t set_index, std::shared_ptr<const latest_entry> entry) {
    return upsert(set_index, {entry->key, entry->event_time_ms, entry->ingested_at_ms, entry->partition, entry->values});
}

bool memory_index::upsert(std::uint32_t set_index, const entry_ref& entry) {
    packed p = pack(entry);  // outside the lock
    const std::uint64_t hash = hash_of(entry.key);
    auto& s = shard_for(set_index, hash);
    std::unique_lock lock(s.mutex);
    auto [at, inserted] = s.find_or_claim(hash, entry.key);
    if (!inserted && at->value.event_time_ms() >= entry.event_time_ms) {
        // Same rule as PostgreSQL and Redis: only a strictly newer event replaces the entry, so a
        // re-delivered message (same event time) changes nothing.
        return false;
    }
    at->value = std::move(p);
    return true;
}

std::shared_ptr<const latest_entry> memory_index::find(std::uint32_t set_index, const std::string& key) const {
    const std::uint64_t hash = hash_of(key);
    auto& s = shard_for(set_index, hash);
    packed copy;
    {
        std::shared_lock lock(s.mutex);
        const slot* at = s.find(hash, key);
        if (at == nullptr) return nullptr;
        copy.size = at->value.size;
        copy.bytes = std::make_unique_for_overwrite<char[]>(copy.size);
        std::memcpy(copy.bytes.get(), at->value.bytes.get(), copy.size);
    }
    return std::make_shared<const latest_entry>(unpack(key, copy));
}

std::optional<latest_entry> memory_index::find_value(std::uint32_t set_index, const std::string& key) const {
    const std::uint64_t hash = hash_of(key);
    auto& s = shard_for(set_index, hash);
    std::shared_lock lock(s.mutex);
    const slot* at = s.find(hash, key);
    if (at == nullptr) return std::nullopt;
    return unpack(key, at->value);
}

std::size_t memory_index::size(std::uint32_t set_index) const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < shards_per_set_; ++i) {
        auto& s = *shards_[set_index * shards_per_set_ + i];
        std::shared_lock lock(s.mutex);
        n += s.used;
    }
    return n;
}

std::size_t memory_index::evict_partitions(std::uint32_t set_index, const std::vector<std::int32_t>& partitions) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < shards_per_set_; ++i) {
        auto& s = *shards_[set_index * shards_per_set_ + i];
        std::unique_lock lock(s.mutex);
        // An erase shifts later slots back into the hole: look at the same index again then.
        for (std::size_t at = 0; at < s.slots.size();) {
            slot& e = s.slots[at];
            if (e.hash != 0 &&
                std::find(partitions.begin(), partitions.end(), e.value.partition()) != partitions.end()) {
                s.erase(e);
                ++n;
            } else {
                ++at;
            }
        }
    }
    return n;
}

void memory_index::for_each(std::uint32_t set_index, const std::function<void(const latest_entry&)>& fn) const {
    for (std::size_t i = 0; i < shards_per_set_; ++i) {
        auto& s = *shards_[set_index * shards_per_set_ + i];
        std::shared_lock lock(s.mutex);
        for (const slot& e : s.slots)
            if (e.hash != 0) fn(unpack(e.key, e.value));
    }
}

}  // namespace sluice
