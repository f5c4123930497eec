// Windowed aggregations per key: tiled sliding windows over event time, one heap block per key.
//
// Definition (the header's contract): an aggregation with window W has tiles of W/60 aligned to
// the Unix epoch. Its value at T covers the events whose tile is one of the 60 tiles ending with
// T's tile and whose event time is <= T. Against an exact sliding window (T - W, T] the tiled
// value misses only the events of ONE tile, the oldest (T's tile - 60), and only those of them
// newer than T - W: that is the documented tile error.
//
// Memory layout, chosen so that 1M keys x a few aggregations stay small. Every key is ONE heap
// block (a "blob"):
//
//   blob_header (32 B) | uint32 region_bytes[aggregations] | key bytes | region 0 | region 1 | ...
//
// A region holds one aggregation's non-empty tiles, oldest first, each a packed record
//   [uint8 age][payload]
// where age = (tile of the key's newest event) - (tile of the record), 0..59: a tile older than
// that is outside the window of every moment at or after the newest event, so it is pruned as the
// newest event moves on. Payloads (record sizes include the age byte):
//   count     uint32, saturating at 2^32-1 per tile                               5 B
//   sum       int64 saturating at the int64 limits (int, timestamp, bool fields)   9 B
//             or double, clamped to +-DBL_MAX (double fields)
//   avg       the sum as above + uint32 count                                     13 B
//   min, max  int64 (int, timestamp, bool as 0/1) or double                        9 B
//   last      uint32 event time within the tile + the value: 8 B (int, timestamp,  13 B
//             double), 1 B (bool), uint32 length + bytes (string, json)            (6 B; 9 B + text)
// Blobs hang off core's sharded_table (sluice/core/sharded_table.hpp, also the memory index's
// table): per shard an open-addressing table of pointers (linear probing, load <= 3/4) behind a
// std::shared_mutex; add() locks its shard exclusively, values_at() and too_late() share it. So a
// key costs about 12-21 B of table slot + one heap chunk (8 B of malloc header, 16 B granularity)
// holding 24 B + 4 B per aggregation + the key + its tiles.
//
// The slot is only the blob pointer, where the memory index's slot holds the hash and the key
// inline (56 B): the blob has to exist anyway for the tiles, so the key and the hash ride in it
// and the table costs 8 B per slot. A probe reads the blob's header for the hash; at 1M keys that
// is 30-40 B per key less than slots of hash + key + pointer.
//
// What add() ignores, so it never grows state without bound:
//   - an event older than the key's newest event by more than allowed lateness (too_late());
//   - for one aggregation, an event within the lateness whose tile is already older than the 60
//     tiles ending with the newest event's tile (a 1-minute window with 1 hour of lateness): no
//     moment at or after the newest event can see it;
//   - null values, and (guarded, the parser refuses them) NaN/inf or values of a type the field
//     cannot hold. count counts the non-null values of its field.
//
// Online/as-of equality: values_at(T) equals aggregate_events(T) over the same events (fed in the
// same order) for every T at or after the newest event of T's tile, in particular for every
// T >= the key's newest event, which is what the online path asks. For an earlier T, tiles after
// T's tile and before its window are excluded exactly (per-tile state makes that possible, also
// for last); but the events of T's own tile newer than T are still included, because a tile keeps
// one aggregate, not its events. Double sums are summed per tile in arrival order, then over the
// tiles oldest first; the brute force does the same, so they are bit-equal for the same order.
//
// Ops a field type cannot have (sum/avg/min/max of a string or json field; the config loader
// refuses them) keep no state and are always null.

#include "sluice/preprocess/aggregator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <stdexcept>
#include <string_view>

#include "sluice/core/sharded_table.hpp"

namespace sluice {
namespace {

constexpr std::int64_t tiles_per_window = 60;

// How an aggregation sees its field's values.
enum class vkind : std::uint8_t { i64, f64, boolean, str };

vkind kind_of(field_type t) {
    switch (t) {
        case field_type::int64:
        case field_type::timestamp: return vkind::i64;
        case field_type::float64: return vkind::f64;
        case field_type::boolean: return vkind::boolean;
        case field_type::string:
        case field_type::json: return vkind::str;
    }
    return vkind::str;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) --q;
    return q;
}

std::int64_t sat_add(std::int64_t a, std::int64_t b) {
    std::int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
    return r;
}

// Finite operands never give NaN; an overflow to infinity is clamped so that a sum stays a number
// JSON can carry.
double clamp_add(double a, double b) {
    const double r = a + b;
    if (std::isfinite(r)) return r;
    return r > 0 ? std::numeric_limits<double>::max() : std::numeric_limits<double>::lowest();
}

template <class T>
T load(const char* p) {
    T x;
    std::memcpy(&x, p, sizeof(T));
    return x;
}

template <class T>
void store(char* p, T x) {
    std::memcpy(p, &x, sizeof(T));
}

template <class T>
void append(std::string& s, T x) {
    char b[sizeof(T)];
    std::memcpy(b, &x, sizeof(T));
    s.append(b, sizeof(T));
}

// One aggregation, resolved against its feature set.
struct agg_desc {
    agg_op op = agg_op::count;
    vkind kind = vkind::i64;
    std::size_t field = 0;
    std::int64_t tile_ms = 1;
    bool stateful = true;  // false: an op the field's type cannot have, or a bad config; always empty
};

// Resolves an aggregation; a config the aggregator cannot run is described in `error` (the
// constructor throws it at start-up; aggregate_events gives empty values instead of throwing).
agg_desc describe(const feature_set_config& set, const aggregation_config& a, std::string* error) {
    agg_desc d;
    d.op = a.op;
    d.field = a.field_index;
    d.tile_ms = a.window_ms / tiles_per_window;
    if (a.field_index >= set.fields.size()) {
        if (error) *error = "aggregation \"" + a.name + "\": field index out of range";
        d.stateful = false;
        return d;
    }
    // The time within a tile is kept as uint32 milliseconds (a 30-day window has 12-hour tiles).
    if (d.tile_ms < 1 || d.tile_ms > std::int64_t{std::numeric_limits<std::uint32_t>::max()}) {
        if (error) *error = "aggregation \"" + a.name + "\": window must be between 60 ms and about 8 years";
        d.tile_ms = 1;
        d.stateful = false;
        return d;
    }
    d.kind = kind_of(set.fields[a.field_index].type);
    if (d.kind == vkind::str && a.op != agg_op::count && a.op != agg_op::last) d.stateful = false;
    return d;
}

// Size of the record at r (its first byte is the age).
std::uint32_t record_len(const agg_desc& d, const char* r) {
    switch (d.op) {
        case agg_op::count: return 5;
        case agg_op::sum:
        case agg_op::min:
        case agg_op::max: return 9;
        case agg_op::avg: return 13;
        case agg_op::last:
            switch (d.kind) {
                case vkind::boolean: return 6;
                case vkind::str: return 9 + load<std::uint32_t>(r + 5);
                case vkind::i64:
                case vkind::f64: return 13;
            }
    }
    return 0;
}

// A size guess for a new key's first records (a last of a string grows when it must).
std::uint32_t first_record_guess(const agg_desc& d) {
    if (!d.stateful) return 0;
    if (d.op == agg_op::last && d.kind == vkind::str) return 9 + 8;
    const char dummy[16] = {};
    return record_len(d, dummy);
}

// An event's value as its aggregation sees it.
struct input {
    std::int64_t i = 0;
    double d = 0;
    std::string_view s;
};

// False when the value does not count: null, not finite, or of a type the field cannot hold
// (the parser never produces either; guarded all the same).
bool to_input(const agg_desc& d, const value& v, input& in) {
    switch (d.kind) {
        case vkind::i64:
        case vkind::boolean:
            if (const auto* p = std::get_if<std::int64_t>(&v))
                in.i = *p;
            else if (const auto* b = std::get_if<bool>(&v))
                in.i = *b ? 1 : 0;
            else
                return false;
            if (d.kind == vkind::boolean) in.i = in.i != 0 ? 1 : 0;
            return true;
        case vkind::f64:
            if (const auto* p = std::get_if<double>(&v)) {
                if (!std::isfinite(*p)) return false;
                in.d = *p;
                return true;
            }
            if (const auto* p = std::get_if<std::int64_t>(&v)) {
                in.d = static_cast<double>(*p);
                return true;
            }
            return false;
        case vkind::str:
            if (const auto* p = std::get_if<std::string>(&v)) {
                in.s = *p;
                return true;
            }
            return false;
    }
    return false;
}

// Folds one event into its tile's record: `rec` is the record so far (empty for a new tile) and
// becomes the record after the event. `off` is the event's time within its tile. The one place
// that defines a tile's aggregate, for the online state and the brute force alike.
void fold(const agg_desc& d, std::string& rec, std::uint8_t age, std::uint32_t off, const input& in) {
    const bool fresh = rec.empty();
    const bool dbl = d.kind == vkind::f64;
    switch (d.op) {
        case agg_op::count: {
            if (fresh) {
                rec.assign(5, '\0');
                rec[0] = static_cast<char>(age);
            }
            const auto c = load<std::uint32_t>(&rec[1]);
            if (c != std::numeric_limits<std::uint32_t>::max()) store<std::uint32_t>(&rec[1], c + 1);
            return;
        }
        case agg_op::sum:
        case agg_op::avg: {
            if (fresh) {
                rec.assign(d.op == agg_op::avg ? 13 : 9, '\0');
                rec[0] = static_cast<char>(age);
                if (dbl) store<double>(&rec[1], 0.0);
            }
            if (dbl)
                store<double>(&rec[1], clamp_add(load<double>(&rec[1]), in.d));
            else
                store<std::int64_t>(&rec[1], sat_add(load<std::int64_t>(&rec[1]), in.i));
            if (d.op == agg_op::avg) {
                const auto c = load<std::uint32_t>(&rec[9]);
                if (c != std::numeric_limits<std::uint32_t>::max()) store<std::uint32_t>(&rec[9], c + 1);
            }
            return;
        }
        case agg_op::min:
        case agg_op::max: {
            const bool is_min = d.op == agg_op::min;
            if (fresh) {
                rec.assign(9, '\0');
                rec[0] = static_cast<char>(age);
                if (dbl)
                    store<double>(&rec[1], in.d);
                else
                    store<std::int64_t>(&rec[1], in.i);
            } else if (dbl) {
                const auto cur = load<double>(&rec[1]);
                if (is_min ? in.d < cur : in.d > cur) store<double>(&rec[1], in.d);
            } else {
                const auto cur = load<std::int64_t>(&rec[1]);
                if (is_min ? in.i < cur : in.i > cur) store<std::int64_t>(&rec[1], in.i);
            }
            return;
        }
        case agg_op::last: {
            // The newest event time wins; of equal times, the one added last.
            if (!fresh && off < load<std::uint32_t>(&rec[1])) return;
            rec.assign(1, static_cast<char>(age));
            append<std::uint32_t>(rec, off);
            switch (d.kind) {
                case vkind::i64: append<std::int64_t>(rec, in.i); break;
                case vkind::f64: append<double>(rec, in.d); break;
                case vkind::boolean: rec.push_back(static_cast<char>(in.i)); break;
                case vkind::str:
                    append<std::uint32_t>(rec, static_cast<std::uint32_t>(in.s.size()));
                    rec.append(in.s);
                    break;
            }
            return;
        }
    }
}

// The aggregate of the tiles in a window, folded oldest tile first.
struct accumulator {
    std::int64_t count = 0;
    std::int64_t i = 0;
    double d = 0.0;
    bool any = false;
    const char* last = nullptr;  // the newest tile's record (valid while the state is locked)
};

void combine(const agg_desc& d, accumulator& a, const char* r) {
    const bool dbl = d.kind == vkind::f64;
    switch (d.op) {
        case agg_op::count: a.count += load<std::uint32_t>(r + 1); return;
        case agg_op::sum:
        case agg_op::avg:
            if (dbl)
                a.d = clamp_add(a.d, load<double>(r + 1));
            else
                a.i = sat_add(a.i, load<std::int64_t>(r + 1));
            if (d.op == agg_op::avg) a.count += load<std::uint32_t>(r + 9);
            return;
        case agg_op::min:
        case agg_op::max: {
            const bool is_min = d.op == agg_op::min;
            if (dbl) {
                const auto x = load<double>(r + 1);
                if (!a.any || (is_min ? x < a.d : x > a.d)) a.d = x;
            } else {
                const auto x = load<std::int64_t>(r + 1);
                if (!a.any || (is_min ? x < a.i : x > a.i)) a.i = x;
            }
            a.any = true;
            return;
        }
        case agg_op::last: a.last = r; return;
    }
}

value finish(const agg_desc& d, const accumulator& a) {
    switch (d.op) {
        case agg_op::count: return a.count;
        case agg_op::sum:
            if (d.kind == vkind::f64) return a.d;
            if (d.kind == vkind::str) return {};
            return a.i;
        case agg_op::avg:
            if (a.count == 0) return {};
            if (d.kind == vkind::f64) return a.d / static_cast<double>(a.count);
            return static_cast<double>(a.i) / static_cast<double>(a.count);
        case agg_op::min:
        case agg_op::max:
            if (!a.any) return {};
            switch (d.kind) {
                case vkind::i64: return a.i;
                case vkind::f64: return a.d;
                case vkind::boolean: return a.i != 0;
                case vkind::str: return {};
            }
            return {};
        case agg_op::last:
            if (!a.last) return {};
            switch (d.kind) {
                case vkind::i64: return load<std::int64_t>(a.last + 5);
                case vkind::f64: return load<double>(a.last + 5);
                case vkind::boolean: return a.last[5] != 0;
                case vkind::str: return std::string(a.last + 9, load<std::uint32_t>(a.last + 5));
            }
    }
    return {};
}

// glibc's heap chunk for a request: an 8-byte header, 16-byte granularity, 32 bytes at least.
std::size_t chunk_bytes(std::size_t request) {
    return std::max<std::size_t>(32, (request + 8 + 15) & ~std::size_t{15});
}

struct blob_header {
    std::int64_t newest_ms;  // the key's newest event time
    std::uint32_t hash;      // low 32 bits of the key's hash (slot index and a cheap compare)
    std::uint32_t key_len;
    std::uint32_t size;      // bytes in use, header included
    std::uint32_t cap;       // bytes allocated
    std::int32_t partition;  // Kafka partition of the key's newest event; -1 = pushed over HTTP
    std::uint32_t unused;
};
static_assert(sizeof(blob_header) == 32);

blob_header* hdr(char* b) { return reinterpret_cast<blob_header*>(b); }
const blob_header* hdr(const char* b) { return reinterpret_cast<const blob_header*>(b); }

// A table slot: a key's blob (nullptr: empty); the key's hash is in the blob's header.
struct blob_slot_traits {
    using slot = char*;
    static bool empty(const slot& b) { return b == nullptr; }
    static std::uint64_t hash(const slot& b) { return hdr(b)->hash; }
    static constexpr std::size_t max_load_num = 3;
    static constexpr std::size_t max_load_den = 4;
    // The slot comes from the hash's low 32 bits, the shard from the bits above them.
    static constexpr unsigned shard_shift = 32;
};

// What a shard keeps besides its table, under the same lock.
struct shard_data {
    std::size_t heap_bytes = 0;  // heap chunks of the blobs
};

using key_table = sharded_table<blob_slot_traits, shard_data>;
using shard = key_table::shard;
using blob_table = probe_table<blob_slot_traits>;
constexpr std::size_t npos = blob_table::npos;

}  // namespace

struct aggregator::impl {
    std::vector<agg_desc> aggs;
    std::int64_t lateness_ms = 0;
    key_table keys;
    std::uint32_t fixed_bytes = 0;  // header + region table
    std::uint32_t first_guess = 0;

    explicit impl(std::size_t shards) : keys(shards) {}
    ~impl() {
        for (std::size_t i = 0; i < keys.shard_count(); ++i) keys.shard_at(i).table.for_each([](char* b) { std::free(b); });
    }

    std::uint32_t* regions(char* b) const { return reinterpret_cast<std::uint32_t*>(b + sizeof(blob_header)); }
    const std::uint32_t* regions(const char* b) const {
        return reinterpret_cast<const std::uint32_t*>(b + sizeof(blob_header));
    }
    const char* key_of(const char* b) const { return b + fixed_bytes; }
    std::uint32_t region_begin(const char* b, std::size_t a) const {
        std::uint32_t pos = fixed_bytes + hdr(b)->key_len;
        const auto* rb = regions(b);
        for (std::size_t i = 0; i < a; ++i) pos += rb[i];
        return pos;
    }

    static std::uint64_t hash_of(std::string_view key) { return std::hash<std::string_view>{}(key); }
    shard& shard_of(std::uint64_t h) const { return keys.shard_for(h); }

    // Whether the blob is the key's (the table has compared the hash).
    bool is_key(const char* b, std::string_view key) const {
        return hdr(b)->key_len == key.size() && std::memcmp(key_of(b), key.data(), key.size()) == 0;
    }

    std::size_t find(const shard& s, std::string_view key, std::uint32_t h) const {
        return s.table.find(h, [&](const char* b) { return is_key(b, key); });
    }

    // (Re)allocates a blob (nullptr: a new one) to hold at least `need` bytes, keeping its bytes.
    static char* resize_blob(shard& s, char* b, std::size_t need) {
        const std::size_t chunk = chunk_bytes(need);
        const std::size_t old_chunk = b ? chunk_bytes(hdr(b)->cap) : 0;
        if (chunk - 8 > std::numeric_limits<std::uint32_t>::max()) throw std::bad_alloc();
        char* nb = static_cast<char*>(std::realloc(b, chunk - 8));
        if (!nb) throw std::bad_alloc();
        hdr(nb)->cap = static_cast<std::uint32_t>(chunk - 8);
        s.data.heap_bytes += chunk;
        s.data.heap_bytes -= old_chunk;
        return nb;
    }

    // A new key's blob: its header, an empty region table and the key, with room for first_guess
    // bytes of records.
    char* new_blob(shard& s, std::string_view key, std::uint32_t h, std::int64_t t) const {
        const std::size_t size = fixed_bytes + key.size();
        char* b = resize_blob(s, nullptr, size + first_guess);
        auto* hd = hdr(b);
        hd->newest_ms = t;
        hd->partition = -1;
        hd->unused = 0;
        hd->hash = h;
        hd->key_len = static_cast<std::uint32_t>(key.size());
        hd->size = static_cast<std::uint32_t>(size);
        std::memset(regions(b), 0, sizeof(std::uint32_t) * aggs.size());
        std::memcpy(b + fixed_bytes, key.data(), key.size());
        return b;
    }

    // Replaces bytes [pos, pos + old_len) of region `a` of the blob by src[0, new_len).
    void splice(shard& s, char*& b, std::size_t a, std::uint32_t pos, std::uint32_t old_len, const char* src,
                std::uint32_t new_len) const {
        const std::uint32_t size = hdr(b)->size;
        if (old_len == new_len) {
            if (new_len) std::memcpy(b + pos, src, new_len);
            return;
        }
        const std::size_t new_size = std::size_t{size} - old_len + new_len;
        if (new_size > hdr(b)->cap) b = resize_blob(s, b, new_size);
        std::memmove(b + pos + new_len, b + pos + old_len, size - pos - old_len);
        if (new_len) std::memcpy(b + pos, src, new_len);
        hdr(b)->size = static_cast<std::uint32_t>(new_size);
        regions(b)[a] = regions(b)[a] - old_len + new_len;
        // Give memory back when a big record (a long last string) has gone.
        if (new_size + 64 <= hdr(b)->cap) b = resize_blob(s, b, new_size);
    }

    // Moves the key's newest event time to t (> the current one): ages every tile and drops the
    // tiles that leave the 60-tile span.
    void advance(shard& s, char*& b, std::int64_t t) const {
        const std::int64_t old_newest = hdr(b)->newest_ms;
        for (std::size_t a = 0; a < aggs.size(); ++a) {
            const agg_desc& d = aggs[a];
            if (regions(b)[a] == 0) continue;
            const std::int64_t delta = floor_div(t, d.tile_ms) - floor_div(old_newest, d.tile_ms);
            if (delta <= 0) continue;
            const std::uint32_t begin = region_begin(b, a);
            const std::uint32_t end = begin + regions(b)[a];
            std::uint32_t drop_end = begin;
            for (std::uint32_t p = begin; p < end; p += record_len(d, b + p)) {
                const std::int64_t age = static_cast<std::uint8_t>(b[p]) + delta;
                if (age >= tiles_per_window)
                    drop_end = p + record_len(d, b + p);  // records are oldest first: a prefix
                else
                    b[p] = static_cast<char>(age);
            }
            if (drop_end > begin) splice(s, b, a, begin, drop_end - begin, nullptr, 0);
        }
        hdr(b)->newest_ms = t;
    }

    std::vector<value> empty_values() const {
        std::vector<value> out;
        out.reserve(aggs.size());
        for (const auto& d : aggs) out.push_back(finish(d, accumulator{}));
        return out;
    }
};

aggregator::aggregator(const feature_set_config& set, std::size_t shards) : impl_(std::make_unique<impl>(shards)) {
    auto& m = *impl_;
    for (const auto& a : set.aggregations) {
        std::string error;
        m.aggs.push_back(describe(set, a, &error));
        if (!error.empty()) throw std::invalid_argument("feature set \"" + set.name + "\": " + error);
        m.first_guess += first_record_guess(m.aggs.back());
    }
    m.lateness_ms = std::max<std::int64_t>(0, set.allowed_lateness_ms);
    m.fixed_bytes = static_cast<std::uint32_t>(sizeof(blob_header) + sizeof(std::uint32_t) * m.aggs.size());
}

aggregator::~aggregator() = default;

void aggregator::add(const std::string& key, std::int64_t event_time_ms, const std::vector<value>& values,
                     std::int32_t partition) {
    auto& m = *impl_;
    if (key.size() > std::numeric_limits<std::uint32_t>::max() / 2) return;
    const std::uint64_t h = impl::hash_of(key);
    const auto h32 = static_cast<std::uint32_t>(h);
    shard& s = m.shard_of(h);
    std::unique_lock lock(s.mutex);
    const auto [slot, inserted] = s.table.find_or_insert(
        h32, [&](const char* blob) { return m.is_key(blob, key); },
        [&] { return m.new_blob(s, key, h32, event_time_ms); });
    if (!inserted) {
        const std::int64_t newest = hdr(s.table.at(slot))->newest_ms;
        if (event_time_ms < sat_add(newest, -m.lateness_ms)) return;  // too late: the caller dead-letters it
        if (event_time_ms > newest) m.advance(s, s.table.at(slot), event_time_ms);
    }
    char*& b = s.table.at(slot);
    if (partition >= 0) hdr(b)->partition = partition;
    std::string rec;
    for (std::size_t a = 0; a < m.aggs.size(); ++a) {
        const agg_desc& d = m.aggs[a];
        if (!d.stateful || d.field >= values.size()) continue;
        input in;
        if (!to_input(d, values[d.field], in)) continue;
        const std::int64_t tile = floor_div(event_time_ms, d.tile_ms);
        const std::int64_t age = floor_div(hdr(b)->newest_ms, d.tile_ms) - tile;
        if (age >= tiles_per_window) continue;  // older than the span of the newest event: ignored
        const auto off = static_cast<std::uint32_t>(event_time_ms - tile * d.tile_ms);
        std::uint32_t pos = m.region_begin(b, a);
        const std::uint32_t end = pos + m.regions(b)[a];
        std::uint32_t len = 0;
        while (pos < end) {
            const std::int64_t r_age = static_cast<std::uint8_t>(b[pos]);
            if (r_age == age) {
                len = record_len(d, b + pos);
                break;
            }
            if (r_age < age) break;  // a newer tile: the new record goes before it
            pos += record_len(d, b + pos);
        }
        rec.assign(b + pos, len);
        fold(d, rec, static_cast<std::uint8_t>(age), off, in);
        m.splice(s, b, a, pos, len, rec.data(), static_cast<std::uint32_t>(rec.size()));
    }
}

bool aggregator::contains(const std::string& key) const {
    const auto& m = *impl_;
    const std::uint64_t h = impl::hash_of(key);
    const shard& s = m.shard_of(h);
    std::shared_lock lock(s.mutex);
    return m.find(s, key, static_cast<std::uint32_t>(h)) != npos;
}

std::optional<std::int32_t> aggregator::partition_of(const std::string& key) const {
    const auto& m = *impl_;
    const std::uint64_t h = impl::hash_of(key);
    const shard& s = m.shard_of(h);
    std::shared_lock lock(s.mutex);
    const std::size_t slot = m.find(s, key, static_cast<std::uint32_t>(h));
    if (slot == npos) return std::nullopt;
    return hdr(s.table.at(slot))->partition;
}

std::size_t aggregator::evict_partitions(const std::vector<std::int32_t>& partitions) {
    auto& m = *impl_;
    std::size_t evicted = 0;
    for (std::size_t i = 0; i < m.keys.shard_count(); ++i) {
        shard& s = m.keys.shard_at(i);
        std::unique_lock lock(s.mutex);
        evicted += s.table.erase_if([&](char* b) {
            if (std::find(partitions.begin(), partitions.end(), hdr(b)->partition) == partitions.end()) return false;
            s.data.heap_bytes -= chunk_bytes(hdr(b)->cap);
            std::free(b);
            return true;
        });
    }
    return evicted;
}

bool aggregator::too_late(const std::string& key, std::int64_t event_time_ms) const {
    const auto& m = *impl_;
    const std::uint64_t h = impl::hash_of(key);
    const shard& s = m.shard_of(h);
    std::shared_lock lock(s.mutex);
    const std::size_t slot = m.find(s, key, static_cast<std::uint32_t>(h));
    if (slot == npos) return false;
    return event_time_ms < sat_add(hdr(s.table.at(slot))->newest_ms, -m.lateness_ms);
}

std::vector<value> aggregator::values_at(const std::string& key, std::int64_t at_ms) const {
    const auto& m = *impl_;
    const std::uint64_t h = impl::hash_of(key);
    const shard& s = m.shard_of(h);
    std::shared_lock lock(s.mutex);
    const std::size_t slot = m.find(s, key, static_cast<std::uint32_t>(h));
    if (slot == npos) return m.empty_values();
    const char* b = s.table.at(slot);
    const std::int64_t newest = hdr(b)->newest_ms;
    std::vector<value> out;
    out.reserve(m.aggs.size());
    std::uint32_t pos = m.fixed_bytes + hdr(b)->key_len;
    for (std::size_t a = 0; a < m.aggs.size(); ++a) {
        const agg_desc& d = m.aggs[a];
        const std::uint32_t end = pos + m.regions(b)[a];
        accumulator acc;
        const std::int64_t at_tile = floor_div(at_ms, d.tile_ms);
        const std::int64_t newest_tile = floor_div(newest, d.tile_ms);
        for (; pos < end; pos += record_len(d, b + pos)) {
            const std::int64_t tile = newest_tile - static_cast<std::uint8_t>(b[pos]);
            if (tile <= at_tile && tile > at_tile - tiles_per_window) combine(d, acc, b + pos);
        }
        out.push_back(finish(d, acc));
    }
    return out;
}

std::size_t aggregator::memory_bytes() const {
    const auto& m = *impl_;
    std::size_t total = sizeof(aggregator) + sizeof(impl) + m.aggs.capacity() * sizeof(agg_desc) +
                        m.keys.shard_count() * sizeof(shard);
    for (std::size_t i = 0; i < m.keys.shard_count(); ++i) {
        const shard& s = m.keys.shard_at(i);
        std::shared_lock lock(s.mutex);
        total += s.table.slot_count() * sizeof(char*) + s.data.heap_bytes;
    }
    return total;
}

std::size_t aggregator::keys() const {
    const auto& m = *impl_;
    std::size_t total = 0;
    for (std::size_t i = 0; i < m.keys.shard_count(); ++i) {
        const shard& s = m.keys.shard_at(i);
        std::shared_lock lock(s.mutex);
        total += s.table.size();
    }
    return total;
}

std::vector<value> aggregate_events(const feature_set_config& set,
                                    const std::vector<std::pair<std::int64_t, std::vector<value>>>& events,
                                    std::int64_t at_ms) {
    std::vector<value> out;
    out.reserve(set.aggregations.size());
    for (const auto& a : set.aggregations) {
        const agg_desc d = describe(set, a, nullptr);
        accumulator acc;
        std::map<std::int64_t, std::string> tiles;  // tile index → record, oldest first
        if (d.stateful) {
            const std::int64_t at_tile = floor_div(at_ms, d.tile_ms);
            for (const auto& [t, values] : events) {
                if (t > at_ms || d.field >= values.size()) continue;
                const std::int64_t tile = floor_div(t, d.tile_ms);
                if (tile <= at_tile - tiles_per_window) continue;
                input in;
                if (!to_input(d, values[d.field], in)) continue;
                fold(d, tiles[tile], 0, static_cast<std::uint32_t>(t - tile * d.tile_ms), in);
            }
            for (const auto& [tile, rec] : tiles) combine(d, acc, rec.data());
        }
        out.push_back(finish(d, acc));
    }
    return out;
}

}  // namespace sluice
