#include "sluice/query/tiered_reader.hpp"

#include <algorithm>

#include "sluice/core/clock.hpp"

namespace sluice {

tiered_reader::tiered_reader(const config& cfg, memory_index& memory, latest_cache* cache, durable_store* durable,
                             lookup_pool& pool, std::size_t max_waiting, std::vector<aggregator*> aggregators,
                             std::unique_ptr<redis_io_reader> io_reader)
    : cfg_(cfg), memory_(memory), cache_(cache), durable_(durable), pool_(pool), redis_io_(std::move(io_reader)),
      max_waiting_(max_waiting), aggregators_(std::move(aggregators)) {}

tiered_reader::~tiered_reader() = default;

void tiered_reader::get_latest(std::uint32_t set_index, std::string key, latest_callback done) {
    if (cfg_.memory.enabled) {
        if (auto hit = memory_.find_value(set_index, key)) {
            with_aggregations_now(set_index, *hit);
            done(std::move(hit));
            return;
        }
    }
    if (!cache_ && !durable_) {
        done(std::optional<latest_entry>{});
        return;
    }
    // On an io thread: Redis asynchronously on that thread; PostgreSQL (on the pool) only for
    // what Redis has not.
    if (cache_ && redis_io_) {
        auto on_redis = [this, set_index, key, done](result<std::optional<latest_entry>> r) {
            if (r && r.value()) with_aggregations_now(set_index, *r.value());
            if ((r && r.value()) || !durable_) return done(std::move(r));
            std::string redis_error = r ? std::string() : r.message();
            auto task = [this, set_index, key, redis_error = std::move(redis_error), done] {
                done(read_durable(set_index, key, redis_error));
            };
            if (!pool_.submit(std::move(task)))
                done(result<std::optional<latest_entry>>::failure(lookup_backlog_full));
        };
        if (redis_io_->read(set_index, key, std::move(on_redis))) return;
    }
    // Wait with the other single-key reads: one pool task reads all that are waiting.
    bool full = false;
    {
        std::lock_guard lock(waiting_mutex_);
        full = waiting_.size() >= max_waiting_;
        if (!full) {
            waiting_.push_back({set_index, std::move(key), std::move(done)});
            if (draining_) return;
            draining_ = true;
        }
    }
    if (full) return done(result<std::optional<latest_entry>>::failure(lookup_backlog_full));
    schedule_drain();
}

// Memory answers on the calling thread; the keys it misses are read in one task on the lookup
// pool (Redis, then PostgreSQL for what Redis misses), not one task per key.
void tiered_reader::get_latest_many(std::uint32_t set_index, std::vector<std::string> keys,
                                    std::optional<std::int64_t> as_of_ms, latest_many_callback done) {
    if (as_of_ms) return feature_reader::get_latest_many(set_index, std::move(keys), as_of_ms, std::move(done));
    using answer = result<std::optional<latest_entry>>;
    std::vector<answer> answers(keys.size(), answer(std::optional<latest_entry>{}));
    std::vector<std::size_t> misses;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        auto hit = cfg_.memory.enabled ? memory_.find_value(set_index, keys[i]) : std::nullopt;
        if (hit) {
            with_aggregations_now(set_index, *hit);
            answers[i] = std::move(hit);
        } else {
            misses.push_back(i);
        }
    }
    if (misses.empty() || (!cache_ && !durable_)) return done(std::move(answers));
    const std::size_t n = keys.size();
    auto task = [this, set_index, keys = std::move(keys), misses = std::move(misses), answers = std::move(answers),
                 done]() mutable {
        read_stores(set_index, keys, misses, answers);
        done(std::move(answers));
    };
    if (!pool_.submit(std::move(task)))
        done(std::vector<answer>(n, answer::failure(lookup_backlog_full)));
}

void tiered_reader::get_as_of(std::uint32_t set_index, std::string key, std::int64_t at_ms, latest_callback done) {
    if (!durable_) {
        done(result<std::optional<latest_entry>>::failure("as_of lookups need PostgreSQL (history)"));
        return;
    }
    auto task = [this, set_index, key = std::move(key), at_ms, done]() {
        const auto& set = cfg_.feature_sets[set_index];
        auto slice = durable_->read_as_of(set_index, key, at_ms, set.widest_window_ms());
        if (!slice) return done(result<std::optional<latest_entry>>::failure(slice.message()));
        if (!slice->newest) return done(std::optional<latest_entry>{});
        latest_entry e = std::move(*slice->newest);
        if (!set.aggregations.empty()) {
            auto values = aggregate_events(set, slice->events, at_ms);
            e.values.insert(e.values.end(), values.begin(), values.end());
        }
        done(std::optional<latest_entry>{std::move(e)});
    };
    if (!pool_.submit(std::move(task)))
        done(result<std::optional<latest_entry>>::failure(lookup_backlog_full));
}

void tiered_reader::get_history(history_request req, history_callback done) {
    if (!durable_) {
        done(result<history_page>::failure("history needs PostgreSQL, which is not configured"));
        return;
    }
    auto task = [this, req = std::move(req), done]() {
        // One row more than asked tells whether another page follows.
        auto rows = durable_->read_history(req.set_index, req.key, req.from_ms, req.to_ms, req.limit + 1,
                                           req.after ? req.after->event_time_ms : 0, req.after ? req.after->id : -1);
        if (!rows) return done(result<history_page>::failure(rows.message()));
        history_page page;
        auto& r = rows.value();
        const bool more = r.size() > req.limit;
        if (more) r.resize(req.limit);
        if (more && !r.empty()) page.next = history_cursor{r.back().entry.event_time_ms, r.back().id};
        page.records.reserve(r.size());
        for (auto& h : r) page.records.push_back(std::move(h.entry));
        done(std::move(page));
    };
    if (!pool_.submit(std::move(task))) done(result<history_page>::failure(lookup_backlog_full));
}

// Starts a pool task that reads what is waiting; when the pool refuses, the waiting reads
// are answered with the refusal.
void tiered_reader::schedule_drain() {
    if (pool_.submit([this] { drain_waiting(); })) return;
    std::vector<waiting_read> refused;
    {
        std::lock_guard lock(waiting_mutex_);
        refused.swap(waiting_);
        draining_ = false;
    }
    for (auto& w : refused) w.done(result<std::optional<latest_entry>>::failure(lookup_backlog_full));
}

// On a lookup pool thread: every single-key read waiting now, in one Redis pipeline per set
// (instead of a task, a pooled connection and a round trip each: under load, reads arrive
// faster than one round trip, so many share it). Reads that arrive meanwhile are taken by
// the next task, queued behind the pool's other work so that it is not starved.
void tiered_reader::drain_waiting() {
    std::vector<waiting_read> batch;
    {
        std::lock_guard lock(waiting_mutex_);
        batch.swap(waiting_);
    }
    std::vector<std::size_t> order(batch.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return batch[a].set_index < batch[b].set_index; });
    for (std::size_t from = 0; from < order.size();) {
        const std::uint32_t set_index = batch[order[from]].set_index;
        std::size_t to = from;
        std::vector<std::string> keys;
        while (to < order.size() && batch[order[to]].set_index == set_index) keys.push_back(batch[order[to++]].key);
        std::vector<std::size_t> which(keys.size());
        for (std::size_t i = 0; i < which.size(); ++i) which[i] = i;
        std::vector<result<std::optional<latest_entry>>> answers(keys.size(), std::optional<latest_entry>{});
        read_stores(set_index, keys, which, answers);
        for (std::size_t i = 0; i < answers.size(); ++i) batch[order[from + i]].done(std::move(answers[i]));
        from = to;
    }
    {
        std::lock_guard lock(waiting_mutex_);
        if (waiting_.empty()) {
            draining_ = false;
            return;
        }
    }
    schedule_drain();
}

// On a lookup pool thread: keys[i] for each i in `which` from Redis (one pipeline), then from
// PostgreSQL where Redis has no entry, into answers[i]. When both fail, both errors are told.
void tiered_reader::read_stores(std::uint32_t set_index, const std::vector<std::string>& keys,
                                const std::vector<std::size_t>& which,
                                std::vector<result<std::optional<latest_entry>>>& answers) const {
    std::vector<std::string> redis_errors(which.size());
    std::vector<std::size_t> rest;  // positions in `which` left for PostgreSQL
    if (cache_) {
        std::vector<std::string> asked;
        asked.reserve(which.size());
        for (std::size_t i : which) asked.push_back(keys[i]);
        auto got = cache_->read_latest_many(set_index, asked);
        for (std::size_t j = 0; j < which.size(); ++j) {
            auto& r = got[j];
            if (r && r.value()) {
                with_aggregations_now(set_index, *r.value());
                answers[which[j]] = std::move(r);
                continue;
            }
            if (!r) redis_errors[j] = r.message();
            if (durable_)
                rest.push_back(j);
            else
                answers[which[j]] = std::move(r);
        }
    } else {
        for (std::size_t j = 0; j < which.size(); ++j) rest.push_back(j);
    }
    for (std::size_t j : rest) answers[which[j]] = read_durable(set_index, keys[which[j]], redis_errors[j]);
}

// On a lookup pool thread: one key from PostgreSQL; when that fails too, both errors are told.
result<std::optional<latest_entry>> tiered_reader::read_durable(std::uint32_t set_index, const std::string& key,
                                                                const std::string& redis_error) const {
    auto r = durable_->read_latest(set_index, key);
    if (r && r.value()) with_aggregations_now(set_index, *r.value());
    if (!r && !redis_error.empty()) r = result<std::optional<latest_entry>>::failure(redis_error + "; " + r.message());
    return r;
}

// Stored aggregation values are as of their write; the aggregator's are as of now (windows
// move with time, and late events within the lateness count). Used when it holds the key.
void tiered_reader::with_aggregations_now(std::uint32_t set_index, latest_entry& e) const {
    aggregator* agg = set_index < aggregators_.size() ? aggregators_[set_index] : nullptr;
    if (!agg) return;
    // Only state this instance keeps up to date: keys of its partitions, or pushed ones.
    const auto partition = agg->partition_of(e.key);
    if (!partition || (*partition >= 0 && owns_ && !owns_(cfg_.feature_sets[set_index].topic, *partition))) return;
    const auto now_values = agg->values_at(e.key, now_ms());
    e.values.resize(cfg_.feature_sets[set_index].fields.size());
    e.values.insert(e.values.end(), now_values.begin(), now_values.end());
}

}  // namespace sluice
