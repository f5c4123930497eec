#include "sluice/ingest/kafka_ingest.hpp"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "kafka_util.hpp"
#include "partition_flow.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/stage_trace.hpp"

namespace sluice {

namespace {
constexpr std::chrono::milliseconds full_wait{10};
}  // namespace

/// One consumer thread and its librdkafka handle. The rebalance callback and the poll loop run on
/// this thread; offsets_durable() may come from the store writer thread (librdkafka is thread-safe,
/// and partition_flow locks).
struct kafka_ingest::consumer {
    kafka_ingest& owner;
    std::size_t index;
    std::shared_ptr<spdlog::logger> log;
    rd_kafka_t* rk = nullptr;
    std::thread thread;
    std::atomic<bool> running{true};
    std::atomic<bool> stop_fetch{false};
    std::atomic<bool> fetch_stopped{false};
    std::atomic<std::uint64_t> consumed{0};
    // Set by close() before it clears `running`; read by this thread only after that.
    std::chrono::steady_clock::time_point close_deadline{};
    bool commit_done = false;  // this thread only
    bool closed = false;       // written by this thread, read by close() after the join
    std::unordered_map<std::string, std::uint32_t> topic_to_set;
    // Partitions whose messages before a time are passed over (backfill_from; see seed_positions).
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> skip_before;

    // The assigned partitions, their queues and their pause state (no librdkafka in it).
    kafka::partition_flow flow;
    // Per preprocess queue: messages held back while it was full.
    std::vector<std::deque<raw_message>> pending;
    std::chrono::steady_clock::time_point last_backpressure{};
    bool backpressure_dirty = false;

    consumer(kafka_ingest& o, std::size_t i)
        : owner(o), index(i),
          flow(o.outputs_.size(), o.cfg_.pipeline.pause_watermark, o.cfg_.pipeline.resume_watermark) {
        log = module_logger(log_module::ingest);
        pending.resize(o.outputs_.size());
        for (std::size_t s = 0; s < o.cfg_.feature_sets.size(); ++s)
            if (o.consumes(static_cast<std::uint32_t>(s)))
                topic_to_set[o.cfg_.feature_sets[s].topic] = static_cast<std::uint32_t>(s);
    }

    // Moves held-back messages into their queues while there is room.
    void push_pending() {
        for (std::size_t w = 0; w < pending.size(); ++w) {
            auto& q = pending[w];
            if (q.empty()) continue;
            auto& out = *owner.outputs_[w];
            bool pushed = false;
            while (!q.empty() && out.queue.try_push(q.front())) {
                q.pop_front();
                pushed = true;
            }
            if (pushed) out.readable->notify();
            if (q.empty()) backpressure_dirty = true;
        }
    }

    // Pauses and resumes the partitions feeding each queue as partition_flow decides from the
    // queues' fill (a partition that has not delivered since its assignment is never paused:
    // until then a full queue holds its messages in pending).
    void apply_backpressure(bool force) {
        const auto now = std::chrono::steady_clock::now();
        if (!force && !backpressure_dirty && now - last_backpressure < std::chrono::milliseconds(5)) return;
        last_backpressure = now;
        backpressure_dirty = false;
        std::vector<kafka::queue_fill> fills(owner.outputs_.size());
        for (std::size_t w = 0; w < owner.outputs_.size(); ++w) {
            const auto& q = owner.outputs_[w]->queue;
            fills[w] = {q.size(), q.capacity(), !pending[w].empty()};
        }
        const auto changes = flow.update(fills, stop_fetch.load());
        auto* to_pause = rd_kafka_topic_partition_list_new(static_cast<int>(changes.pause.size()) + 1);
        auto* to_resume = rd_kafka_topic_partition_list_new(static_cast<int>(changes.resume.size()) + 1);
        for (const auto& [topic, partition] : changes.pause) rd_kafka_topic_partition_list_add(to_pause, topic.c_str(), partition);
        for (const auto& [topic, partition] : changes.resume)
            rd_kafka_topic_partition_list_add(to_resume, topic.c_str(), partition);
        if (to_pause->cnt > 0) {
            if (auto err = rd_kafka_pause_partitions(rk, to_pause)) log->warn("pausing partitions: {}", rd_kafka_err2str(err));
            log->debug("paused {} partitions", to_pause->cnt);
        }
        if (to_resume->cnt > 0) {
            if (auto err = rd_kafka_resume_partitions(rk, to_resume)) log->warn("resuming partitions: {}", rd_kafka_err2str(err));
            log->debug("resumed {} partitions", to_resume->cnt);
        }
        rd_kafka_topic_partition_list_destroy(to_pause);
        rd_kafka_topic_partition_list_destroy(to_resume);
    }

    bool pending_empty() const {
        for (const auto& q : pending)
            if (!q.empty()) return false;
        return true;
    }

    void handle(rd_kafka_message_t* m) {
        const char* topic = rd_kafka_topic_name(m->rkt);
        auto it = topic_to_set.find(topic);
        if (it == topic_to_set.end()) return;
        raw_message msg;
        msg.set_index = it->second;
        msg.consumer_index = static_cast<std::uint32_t>(index);
        msg.source.topic = topic;
        msg.source.partition = m->partition;
        msg.source.offset = m->offset;
        rd_kafka_timestamp_type_t tstype;
        msg.kafka_timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
        // A partition started at its set's backfill_from without the broker's help: messages before
        // the first one at or after that time are passed over (and read again after a restart).
        if (!skip_before.empty()) {
            const auto skip = skip_before.find({msg.source.topic, msg.source.partition});
            if (skip != skip_before.end()) {
                if (msg.kafka_timestamp_ms < skip->second) return;
                skip_before.erase(skip);
            }
        }
        if (traced(msg.source)) msg.consumed_us = now_us();
        msg.has_value = m->payload != nullptr;
        if (m->payload) msg.payload.assign(static_cast<const char*>(m->payload), m->len);
        consumed.fetch_add(1, std::memory_order_relaxed);

        if (flow.first_delivery(msg.source.topic, msg.source.partition)) backpressure_dirty = true;
        const std::size_t w = flow.route(msg.source.topic, msg.source.partition);
        auto& out = *owner.outputs_[w];
        // Keep partition order: once something is held back for this queue, everything after waits too.
        if (pending[w].empty() && out.queue.try_push(msg)) {
            out.readable->notify();
            return;
        }
        pending[w].push_back(std::move(msg));
        backpressure_dirty = true;
    }

    void on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
        const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
            seed_positions(parts);
            {
                // Where PostgreSQL says this group's partitions are durable up to.
                std::lock_guard lock(owner.durable_mutex_);
                for (int i = 0; i < parts->cnt; ++i)
                    if (parts->elems[i].offset >= 0) {
                        auto& next = owner.durable_[{parts->elems[i].topic, parts->elems[i].partition}];
                        next = std::max(next, parts->elems[i].offset);
                    }
            }
            if (owner.on_assign_) {
                std::vector<partition_offset> assigned;
                for (int i = 0; i < parts->cnt; ++i)
                    assigned.push_back({parts->elems[i].topic, parts->elems[i].partition,
                                        parts->elems[i].offset >= 0 ? parts->elems[i].offset : -1});
                owner.on_assign_(assigned);
            }
            rd_kafka_error_t* e = nullptr;
            rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
            if (cooperative)
                e = rd_kafka_incremental_assign(rk, parts);
            else
                rerr = rd_kafka_assign(rk, parts);
            if (e) {
                log->error("assign failed: {}", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            } else if (rerr) {
                log->error("assign failed: {}", rd_kafka_err2str(rerr));
            }
            {
                std::vector<kafka::topic_partition> assigned;
                for (int i = 0; i < parts->cnt; ++i) assigned.emplace_back(parts->elems[i].topic, parts->elems[i].partition);
                flow.assign(assigned, cooperative);
            }
            log->info("assigned {} partitions ({}){}", parts->cnt, cooperative ? "cooperative" : "eager",
                      owner.cfg_.kafka.membership_group.empty() ? "" : " in group " + owner.cfg_.kafka.membership_group);
            // Store the seeded positions too: Kafka's committed offsets then catch up with
            // PostgreSQL even when no new message arrives (a commit lost in a rebalance, say).
            auto* seeded = rd_kafka_topic_partition_list_new(parts->cnt);
            for (int i = 0; i < parts->cnt; ++i)
                if (parts->elems[i].offset >= 0)
                    rd_kafka_topic_partition_list_add(seeded, parts->elems[i].topic, parts->elems[i].partition)->offset =
                        parts->elems[i].offset;
            if (seeded->cnt > 0)
                if (auto store_err = rd_kafka_offsets_store(rk, seeded))
                    log->debug("storing seeded offsets: {}", rd_kafka_err2str(store_err));
            rd_kafka_topic_partition_list_destroy(seeded);
        } else {
            const bool lost = rd_kafka_assignment_lost(rk);
            if (cooperative) {
                if (auto* e = rd_kafka_incremental_unassign(rk, parts)) rd_kafka_error_destroy(e);
            } else {
                rd_kafka_assign(rk, nullptr);
            }
            std::vector<partition_offset> revoked;
            auto hold = owner.hold_assignment();
            {
                std::vector<kafka::topic_partition> gone;
                for (int i = 0; i < parts->cnt; ++i) {
                    gone.emplace_back(parts->elems[i].topic, parts->elems[i].partition);
                    revoked.push_back({parts->elems[i].topic, parts->elems[i].partition, 0});
                }
                flow.revoke(gone, cooperative);
            }
            log->info("revoked {} partitions{}{}", parts->cnt, lost ? " (assignment lost)" : "",
                      owner.cfg_.kafka.membership_group.empty() ? "" : " in group " + owner.cfg_.kafka.membership_group);
            if (owner.on_revoke_) owner.on_revoke_(revoked);
        }
    }

    // PostgreSQL's consumer_offsets is written in the same transaction as the rows: it is where
    // durable data ends, so consumption resumes exactly there.
    void seed_positions(rd_kafka_topic_partition_list_t* parts) {
        for (int i = 0; i < parts->cnt; ++i) skip_before.erase({parts->elems[i].topic, parts->elems[i].partition});
        if (!owner.offsets_source_) return;
        auto stored = owner.offsets_source_->read_offsets(owner.cfg_.kafka.group_id);
        if (!stored) {
            log->warn("cannot read consumer_offsets from PostgreSQL, using Kafka's committed offsets: {}",
                      stored.message());
            return;
        }
        std::map<std::pair<std::string, std::int32_t>, std::int64_t> by_partition;
        for (const auto& o : stored.value()) by_partition[{o.topic, o.partition}] = o.next_offset;
        // Partitions PostgreSQL has no offset for start at their set's backfill_from, if it has one.
        std::unique_ptr<rd_kafka_topic_partition_list_t, void (*)(rd_kafka_topic_partition_list_t*)> by_time(
            rd_kafka_topic_partition_list_new(parts->cnt), rd_kafka_topic_partition_list_destroy);
        for (int i = 0; i < parts->cnt; ++i) {
            auto it = by_partition.find({parts->elems[i].topic, parts->elems[i].partition});
            if (it != by_partition.end()) {
                parts->elems[i].offset = it->second;
                continue;
            }
            const auto set = topic_to_set.find(parts->elems[i].topic);
            if (set == topic_to_set.end()) continue;
            const std::int64_t from = owner.cfg_.feature_sets[set->second].backfill_from_ms;
            if (from > 0)
                rd_kafka_topic_partition_list_add(by_time.get(), parts->elems[i].topic, parts->elems[i].partition)->offset =
                    from;
        }
        if (by_time->cnt == 0) return;
        // Each partition's first offset at or after the time (the end when none is).
        if (auto err = rd_kafka_offsets_for_times(rk, by_time.get(), 10000)) {
            log->warn("looking up backfill_from offsets: {}; starting at the earliest retained", rd_kafka_err2str(err));
            return;
        }
        for (int i = 0; i < by_time->cnt; ++i) {
            const auto& t = by_time->elems[i];
            // The broker's answer when it has one; else (no message at or after the time, or a
            // broker without timestamp lookups, as librdkafka's mock cluster) from the start,
            // passing over what is older (handle()): the same first message either way.
            const bool found = !t.err && t.offset >= 0;
            if (!found) skip_before[{t.topic, t.partition}] = owner.cfg_.feature_sets[topic_to_set.at(t.topic)].backfill_from_ms;
            for (int j = 0; j < parts->cnt; ++j)
                if (parts->elems[j].partition == t.partition && std::strcmp(parts->elems[j].topic, t.topic) == 0)
                    parts->elems[j].offset = found ? t.offset : RD_KAFKA_OFFSET_BEGINNING;
            if (found)
                log->info("{}[{}]: no stored offset; starting at offset {} (backfill_from)", t.topic, t.partition, t.offset);
            else
                log->info("{}[{}]: no stored offset; reading from the start for the first message at or after "
                          "backfill_from (the broker gave no offset for the time)",
                          t.topic, t.partition);
        }
    }

    void run() {
        const auto poll_ms = owner.cfg_.kafka.poll_timeout_ms;
        while (running.load()) {
            push_pending();
            apply_backpressure(false);
            if (stop_fetch.load() && !fetch_stopped.load()) {
                apply_backpressure(true);
                if (pending_empty())
                    fetch_stopped.store(true);
                else
                    owner.outputs_[0]->writable.wait_for(full_wait);
            }
            // While something is held back, poll briefly so it moves as soon as there is room.
            rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, pending_empty() ? poll_ms : 1);
            if (!m) continue;
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    log->warn("consumer error: {}", rd_kafka_message_errstr(m));
            } else if (!fetch_stopped.load()) {
                handle(m);
            }
            // After stop_fetching() a message is left unprocessed: its offset is never stored, so the
            // next run consumes it.
            rd_kafka_message_destroy(m);
        }
        finish();
    }

    // The final commit of the stored offsets and the group leave, each served on a queue of its
    // own until it is done or close_deadline passes. Kafka's committed offsets are a copy for lag
    // tools (consumption resumes from PostgreSQL's), and a member that does not leave is dropped
    // by the coordinator after session.timeout.ms; but with the coordinator gone, librdkafka's
    // blocking commit and close wait many seconds, and its close sometimes for good.
    void finish() {
        rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
        const auto serve_until = [&](const std::function<bool()>& done) {
            while (!done()) {
                if (std::chrono::steady_clock::now() >= close_deadline) return false;
                rd_kafka_queue_poll_callback(q, 50);
            }
            return true;
        };
        commit_done = false;
        const auto on_result = [](rd_kafka_t*, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t*, void* self) {
            static_cast<consumer*>(self)->on_commit(e);
        };
        auto err = rd_kafka_commit_queue(rk, nullptr, q, on_result, this);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (!serve_until([&] { return commit_done; }))
                log->warn("final offset commit to Kafka: no answer before the shutdown deadline");
        } else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            log->warn("final offset commit to Kafka: {}", rd_kafka_err2str(err));
        }
        if (auto* e = rd_kafka_consumer_close_queue(rk, q)) {
            log->warn("consumer close: {}", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        } else {
            closed = serve_until([&] { return rd_kafka_consumer_closed(rk) == 1; });
        }
        rd_kafka_queue_destroy(q);
    }

    void on_commit(rd_kafka_resp_err_t err) {
        commit_done = true;
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) log->warn("final offset commit to Kafka: {}", rd_kafka_err2str(err));
    }
};

namespace {
void rebalance_trampoline(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque) {
    static_cast<kafka_ingest::consumer*>(opaque)->on_rebalance(err, parts);
}
}  // namespace

kafka_ingest::kafka_ingest(const config& cfg, std::string bootstrap_servers, std::vector<channel<raw_message>*> outputs,
                           offset_source* offsets_source)
    : cfg_(cfg), bootstrap_(std::move(bootstrap_servers)), outputs_(std::move(outputs)), offsets_source_(offsets_source) {}

kafka_ingest::~kafka_ingest() { close(std::chrono::steady_clock::now() + std::chrono::seconds(10)); }

bool kafka_ingest::consumes(std::uint32_t set_index) const {
    return consumed_sets_.empty() ||
           std::find(consumed_sets_.begin(), consumed_sets_.end(), set_index) != consumed_sets_.end();
}

status kafka_ingest::start() {
    std::vector<std::string> topics;
    for (std::uint32_t s = 0; s < cfg_.feature_sets.size(); ++s)
        if (consumes(s) && std::find(topics.begin(), topics.end(), cfg_.feature_sets[s].topic) == topics.end())
            topics.push_back(cfg_.feature_sets[s].topic);
    if (topics.empty()) return status::success();  // every set runs in a group of its own
    for (int i = 0; i < cfg_.kafka.consumer_threads; ++i) {
        auto c = std::make_unique<consumer>(*this, static_cast<std::size_t>(i));
        // Our defaults first; kafka.properties override them, except the two settings the
        // delivery guarantee rests on.
        std::map<std::string, std::string> props = {
            {"bootstrap.servers", bootstrap_},
            {"group.id", cfg_.kafka.broker_group()},
            {"client.id", "sluice-" + std::to_string(i)},
            {"auto.offset.reset", "earliest"},
            {"enable.auto.commit", "true"},
            {"auto.commit.interval.ms", "1000"},
            {"session.timeout.ms", "6000"},
            {"heartbeat.interval.ms", "1500"},
            {"queued.max.messages.kbytes", "16384"},
            {"enable.partition.eof", "false"},
            // librdkafka's mock broker (the embedded one) holds a fetch that finds no data for the
            // whole fetch.wait.max.ms (default 500) even when data arrives meanwhile, which made
            // records up to half a second old before they were visible. A real broker answers as
            // soon as data arrives and keeps librdkafka's default; this costs ~2 % of a core idle.
            {"fetch.wait.max.ms", cfg_.kafka.is_embedded() ? "10" : "500"},
        };
        for (const auto& [k, v] : cfg_.kafka.properties) props[k] = v;
        props["enable.auto.offset.store"] = "false";
        if (cfg_.kafka.properties.count("enable.auto.offset.store") && cfg_.kafka.properties.at("enable.auto.offset.store") != "false")
            c->log->warn("kafka.properties enable.auto.offset.store is ignored: offsets are stored only once durable");
        std::string error;
        rd_kafka_conf_t* conf = kafka::make_conf(props, error);
        if (!conf) return status::failure("kafka config: " + error);
        rd_kafka_conf_set_opaque(conf, c.get());
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_trampoline);
        char errstr[512];
        c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
        if (!c->rk) {
            rd_kafka_conf_destroy(conf);
            return status::failure(std::string("kafka consumer: ") + errstr);
        }
        rd_kafka_poll_set_consumer(c->rk);
        auto* sub = rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()));
        for (const auto& t : topics) rd_kafka_topic_partition_list_add(sub, t.c_str(), RD_KAFKA_PARTITION_UA);
        auto err = rd_kafka_subscribe(c->rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (err) {
            rd_kafka_destroy(c->rk);
            return status::failure(std::string("kafka subscribe: ") + rd_kafka_err2str(err));
        }
        consumers_.push_back(std::move(c));
    }
    for (auto& c : consumers_) c->thread = std::thread([p = c.get()] { p->run(); });
    return status::success();
}

void kafka_ingest::stop_fetching(std::chrono::milliseconds deadline) {
    for (auto& c : consumers_) c->stop_fetch.store(true);
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (auto& c : consumers_)
        while (!c->fetch_stopped.load() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

bool kafka_ingest::close(std::chrono::steady_clock::time_point deadline) {
    for (auto& c : consumers_) {
        c->close_deadline = deadline;
        c->running.store(false);
    }
    bool all_closed = true;
    for (auto& c : consumers_) {
        const bool ran = c->thread.joinable();  // false when start() failed before the threads began
        if (ran) c->thread.join();
        if (!c->rk) continue;
        if (!ran || c->closed) {
            rd_kafka_destroy(c->rk);
            c->rk = nullptr;
            continue;
        }
        // rd_kafka_destroy would wait for the same group leave. The handle and its consumer are
        // left as they are for the process to end with; the coordinator drops the member after
        // session.timeout.ms, and the next run resumes from PostgreSQL's offsets.
        c->log->warn("consumer {} had not left group {} by the shutdown deadline; leaving it to the "
                     "coordinator's session timeout",
                     c->index, cfg_.kafka.broker_group());
        all_closed = false;
        (void)c.release();
    }
    consumers_.clear();
    return all_closed;
}

void kafka_ingest::offsets_durable(const std::vector<partition_offset>& offsets) {
    {
        std::lock_guard lock(durable_mutex_);
        for (const auto& o : offsets) {
            auto& next = durable_[{o.topic, o.partition}];
            next = std::max(next, o.next_offset);
        }
    }
    for (auto& c : consumers_) {
        auto* list = rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
        for (const auto& o : offsets)
            if (c->flow.owns(o.topic, o.partition))
                rd_kafka_topic_partition_list_add(list, o.topic.c_str(), o.partition)->offset = o.next_offset;
        if (list->cnt > 0 && c->rk) {
            // A partition revoked meanwhile fails with __STATE: its new owner resumes from
            // consumer_offsets, which this batch already advanced.
            auto err = rd_kafka_offsets_store(c->rk, list);
            if (err) c->log->debug("storing offsets: {}", rd_kafka_err2str(err));
        }
        rd_kafka_topic_partition_list_destroy(list);
    }
}

bool kafka_ingest::owns(const std::string& topic, std::int32_t partition) const {
    for (const auto& c : consumers_)
        if (c->flow.owns(topic, partition)) return true;
    return false;
}

bool kafka_ingest::has_assignment() const {
    for (const auto& c : consumers_)
        if (c->flow.any()) return true;
    return false;
}

std::int64_t kafka_ingest::consumer_lag(std::uint32_t set_index) const {
    const std::string& topic = cfg_.feature_sets[set_index].topic;
    std::int64_t lag = -1;
    for (const auto& c : consumers_) {
        const std::vector<std::int32_t> partitions = c->flow.owned_of(topic);
        if (partitions.empty() || !c->rk) continue;
        rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
        for (auto p : partitions) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
        if (rd_kafka_position(c->rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (int i = 0; i < list->cnt; ++i) {
                const auto& tp = list->elems[i];
                std::int64_t low = 0, high = 0;
                if (tp.offset < 0) continue;  // nothing fetched yet: its position is unknown
                if (rd_kafka_get_watermark_offsets(c->rk, topic.c_str(), tp.partition, &low, &high) !=
                        RD_KAFKA_RESP_ERR_NO_ERROR ||
                    high < 0)
                    continue;
                lag = std::max<std::int64_t>(lag, 0) + std::max<std::int64_t>(0, high - tp.offset);
            }
        }
        rd_kafka_topic_partition_list_destroy(list);
    }
    return lag;
}

kafka_ingest::progress kafka_ingest::durable_progress(std::uint32_t set_index) const {
    const std::string& topic = cfg_.feature_sets[set_index].topic;
    progress out;
    bool unknown = false;
    for (const auto& c : consumers_) {
        if (!c->rk) continue;
        for (const std::int32_t p : c->flow.owned_of(topic)) {
            std::int64_t low = 0, high = 0;
            if (rd_kafka_get_watermark_offsets(c->rk, topic.c_str(), p, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
                high < 0) {
                unknown = true;
                continue;
            }
            std::int64_t durable = -1;
            {
                std::lock_guard lock(durable_mutex_);
                if (auto it = durable_.find({topic, p}); it != durable_.end()) durable = it->second;
            }
            if (durable < 0 && high > low) unknown = true;  // messages, none of them durable yet
            const std::int64_t at = std::clamp(durable, low, high);
            out.done += at - low;
            out.behind = std::max<std::int64_t>(out.behind, 0) + (high - at);
        }
    }
    if (unknown) out.behind = -1;
    return out;
}

std::uint64_t kafka_ingest::messages_consumed() const {
    std::uint64_t n = 0;
    for (const auto& c : consumers_) n += c->consumed.load(std::memory_order_relaxed);
    return n;
}

}  // namespace sluice
