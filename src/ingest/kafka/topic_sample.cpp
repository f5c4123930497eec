// sample_topic (see sluice/ingest/topic_sample.hpp): assign, not subscribe, so that no group and no
// offset of the daemon's is touched.

#include "sluice/ingest/topic_sample.hpp"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <memory>

#include "kafka_util.hpp"
#include "sluice/core/clock.hpp"

namespace sluice {
namespace {

struct handle_deleter {
    void operator()(rd_kafka_t* rk) const {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
};
struct list_deleter {
    void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
struct metadata_deleter {
    void operator()(const rd_kafka_metadata_t* m) const { rd_kafka_metadata_destroy(m); }
};

constexpr int broker_timeout_ms = 10000;

}  // namespace

result<std::vector<raw_message>> sample_topic(const config& cfg, const std::string& bootstrap, std::uint32_t set_index,
                                              const topic_sample_options& o) {
    using R = result<std::vector<raw_message>>;
    const std::string& topic = cfg.feature_sets.at(set_index).topic;
    std::map<std::string, std::string> props = {
        {"bootstrap.servers", bootstrap}, {"group.id", "sluice-try"}, {"client.id", "sluice-try"},
        {"enable.auto.commit", "false"},  {"enable.auto.offset.store", "false"}, {"fetch.wait.max.ms", "100"}};
    // The connection's settings (security, timeouts) as the daemon uses them; never its group.
    for (const auto& [k, v] : cfg.kafka.properties)
        if (k != "group.id" && k != "enable.auto.commit" && k != "group.instance.id") props[k] = v;
    std::string error;
    rd_kafka_conf_t* conf = kafka::make_conf(props, error);
    if (!conf) return R::failure("kafka config: " + error, error_kind::permanent);
    char errstr[512];
    rd_kafka_t* raw = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!raw) {
        rd_kafka_conf_destroy(conf);
        return R::failure(std::string("kafka consumer: ") + errstr, error_kind::permanent);
    }
    std::unique_ptr<rd_kafka_t, handle_deleter> rk(raw);
    rd_kafka_poll_set_consumer(rk.get());

    rd_kafka_topic_t* t = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    const auto err = rd_kafka_metadata(rk.get(), 0, t, &md, broker_timeout_ms);
    rd_kafka_topic_destroy(t);
    if (err) return R::failure("reading topic " + topic + "'s metadata from " + bootstrap + ": " + rd_kafka_err2str(err));
    std::unique_ptr<const rd_kafka_metadata_t, metadata_deleter> metadata(md);
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0)
        return R::failure("topic " + topic + " does not exist at " + bootstrap, error_kind::permanent);

    // Where to start in each partition, and (for --records) where the topic ended.
    const int partitions = md->topics[0].partition_cnt;
    const std::int64_t per_partition = (o.records + partitions - 1) / partitions;
    std::unique_ptr<rd_kafka_topic_partition_list_t, list_deleter> assign(rd_kafka_topic_partition_list_new(partitions));
    std::map<std::int32_t, std::int64_t> end;  // partitions still to read, to their end offset
    for (int i = 0; i < partitions; ++i) {
        const std::int32_t p = md->topics[0].partitions[i].id;
        std::int64_t low = 0, high = 0;
        if (auto e = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &low, &high, broker_timeout_ms))
            return R::failure("reading " + topic + "[" + std::to_string(p) + "]'s offsets: " + rd_kafka_err2str(e));
        std::int64_t start = o.from_start ? low : (o.seconds > 0 ? high : std::max(low, high - per_partition));
        rd_kafka_topic_partition_list_add(assign.get(), topic.c_str(), p)->offset = start;
        if (o.seconds == 0 && start < high) end[p] = high;
    }
    if (auto e = rd_kafka_assign(rk.get(), assign.get()))
        return R::failure(std::string("assigning the partitions: ") + rd_kafka_err2str(e));

    std::vector<raw_message> out;
    const auto started = std::chrono::steady_clock::now();
    const auto deadline = started + std::chrono::seconds(o.seconds > 0 ? o.seconds : 60);
    while (static_cast<std::int64_t>(out.size()) < o.records && std::chrono::steady_clock::now() < deadline) {
        if (o.seconds == 0 && end.empty()) break;  // every partition read to where it ended
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
        if (!m) continue;
        if (m->err) {
            const bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
            const std::string why = rd_kafka_message_errstr(m);
            rd_kafka_message_destroy(m);
            if (eof) continue;
            return R::failure("reading " + topic + ": " + why);
        }
        raw_message msg;
        msg.set_index = set_index;
        msg.source = {topic, m->partition, m->offset};
        rd_kafka_timestamp_type_t type;
        msg.kafka_timestamp_ms = rd_kafka_message_timestamp(m, &type);
        msg.has_value = m->payload != nullptr;
        if (m->payload) msg.payload.assign(static_cast<const char*>(m->payload), m->len);
        if (auto it = end.find(m->partition); it != end.end() && m->offset + 1 >= it->second) end.erase(it);
        rd_kafka_message_destroy(m);
        out.push_back(std::move(msg));
    }
    return out;
}

}  // namespace sluice
