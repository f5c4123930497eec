// The in-memory latest index (memory_index.hpp): packed entries in core's sharded_table. Its slot
// holds the hash, the key and the packed entry inline, where the aggregator's holds a pointer to a
// heap block: why is said at memory_index::slot.

#include "sluice/store/memory_index.hpp"

#include <cstring>
#include <functional>
#include <mutex>
#include <shared_mutex>
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

memory_index::memory_index(std::size_t feature_sets, std::size_t shards) {
    sets_.reserve(feature_sets);
    for (std::size_t i = 0; i < feature_sets; ++i) sets_.emplace_back(shards);
}

std::uint64_t memory_index::hash_of(const std::string& key) {
    const std::uint64_t h = std::hash<std::string>{}(key);
    return h == 0 ? 1 : h;
}

bool memory_index::upsert(std::uint32_t set_index, std::shared_ptr<const latest_entry> entry) {
    return upsert(set_index, {entry->key, entry->event_time_ms, entry->ingested_at_ms, entry->partition, entry->values});
}

bool memory_index::upsert(std::uint32_t set_index, const entry_ref& entry) {
    packed p = pack(entry);  // outside the lock
    const std::uint64_t hash = hash_of(entry.key);
    shard& s = sets_[set_index].shard_for(hash);
    std::unique_lock lock(s.mutex);
    const auto [at, inserted] = s.table.find_or_insert(
        hash, [&](const slot& e) { return e.key == entry.key; }, [&] { return slot{hash, entry.key, std::move(p)}; });
    if (inserted) return true;
    slot& e = s.table.at(at);
    if (e.value.event_time_ms() >= entry.event_time_ms) {
        // Same rule as PostgreSQL and Redis: only a strictly newer event replaces the entry, so a
        // re-delivered message (same event time) changes nothing.
        return false;
    }
    e.value = std::move(p);
    return true;
}

std::shared_ptr<const latest_entry> memory_index::find(std::uint32_t set_index, const std::string& key) const {
    const std::uint64_t hash = hash_of(key);
    const shard& s = sets_[set_index].shard_for(hash);
    packed copy;
    {
        std::shared_lock lock(s.mutex);
        const std::size_t at = s.table.find(hash, [&](const slot& e) { return e.key == key; });
        if (at == s.table.npos) return nullptr;
        const packed& found = s.table.at(at).value;
        copy.size = found.size;
        copy.bytes = std::make_unique_for_overwrite<char[]>(copy.size);
        std::memcpy(copy.bytes.get(), found.bytes.get(), copy.size);
    }
    return std::make_shared<const latest_entry>(unpack(key, copy));
}

std::optional<latest_entry> memory_index::find_value(std::uint32_t set_index, const std::string& key) const {
    const std::uint64_t hash = hash_of(key);
    const shard& s = sets_[set_index].shard_for(hash);
    std::shared_lock lock(s.mutex);
    const std::size_t at = s.table.find(hash, [&](const slot& e) { return e.key == key; });
    if (at == s.table.npos) return std::nullopt;
    return unpack(key, s.table.at(at).value);
}

std::size_t memory_index::size(std::uint32_t set_index) const {
    const table& t = sets_[set_index];
    std::size_t n = 0;
    for (std::size_t i = 0; i < t.shard_count(); ++i) {
        const shard& s = t.shard_at(i);
        std::shared_lock lock(s.mutex);
        n += s.table.size();
    }
    return n;
}

std::size_t memory_index::evict_partitions(std::uint32_t set_index, const std::vector<std::int32_t>& partitions) {
    const table& t = sets_[set_index];
    std::size_t n = 0;
    for (std::size_t i = 0; i < t.shard_count(); ++i) {
        shard& s = t.shard_at(i);
        std::unique_lock lock(s.mutex);
        n += s.table.erase_if([&](const slot& e) {
            return std::find(partitions.begin(), partitions.end(), e.value.partition()) != partitions.end();
        });
    }
    return n;
}

void memory_index::for_each(std::uint32_t set_index, const std::function<void(const latest_entry&)>& fn) const {
    const table& t = sets_[set_index];
    for (std::size_t i = 0; i < t.shard_count(); ++i) {
        const shard& s = t.shard_at(i);
        std::shared_lock lock(s.mutex);
        s.table.for_each([&](const slot& e) { fn(unpack(e.key, e.value)); });
    }
}

}  // namespace sluice
