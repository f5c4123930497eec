#include <librdkafka/rdkafka.h>

#include <atomic>
#include <mutex>

#include "kafka_util.hpp"
#include "sluice/ingest/kafka_ingest.hpp"

namespace sluice {

namespace {
constexpr int delivery_timeout_ms = 30000;

/// Delivery outcome of one publish() call, shared by its messages' reports.
struct publish_state {
    std::atomic<int> outstanding{0};
    std::mutex mutex;
    std::string first_error;
    bool first_permanent = false;  // first_error is one retrying cannot cure
};

// Errors that trying again cannot cure: the topic refuses these messages.
bool permanent(rd_kafka_resp_err_t err) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        case RD_KAFKA_RESP_ERR__INVALID_ARG:
            return true;
        default:
            return false;
    }
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    auto* st = static_cast<publish_state*>(m->_private);
    if (m->err) {
        std::lock_guard lock(st->mutex);
        if (st->first_error.empty()) {
            st->first_error = rd_kafka_err2str(m->err);
            st->first_permanent = permanent(m->err);
        }
    }
    st->outstanding.fetch_sub(1);
}
}  // namespace

struct kafka_dead_letter_publisher::impl {
    const config& cfg;
    std::string bootstrap;
    rd_kafka_t* rk = nullptr;
    impl(const config& c, std::string b) : cfg(c), bootstrap(std::move(b)) {}
    ~impl() {
        if (rk) {
            rd_kafka_flush(rk, 5000);
            rd_kafka_destroy(rk);
        }
    }
};

kafka_dead_letter_publisher::kafka_dead_letter_publisher(const config& cfg, std::string bootstrap_servers)
    : impl_(std::make_unique<impl>(cfg, std::move(bootstrap_servers))) {}

kafka_dead_letter_publisher::~kafka_dead_letter_publisher() = default;

status kafka_dead_letter_publisher::start() {
    std::map<std::string, std::string> props = {{"bootstrap.servers", impl_->bootstrap},
                                                {"client.id", "sluice-dead-letters"},
                                                {"enable.idempotence", "true"},
                                                {"acks", "all"},
                                                {"linger.ms", "5"},
                                                {"delivery.timeout.ms", std::to_string(delivery_timeout_ms)}};
    std::string error;
    rd_kafka_conf_t* conf = kafka::make_conf(props, error);
    if (!conf) return status::failure("dead-letter producer: " + error);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char errstr[512];
    impl_->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!impl_->rk) {
        rd_kafka_conf_destroy(conf);
        return status::failure(std::string("dead-letter producer: ") + errstr);
    }
    return status::success();
}

status kafka_dead_letter_publisher::publish(const std::vector<dead_letter>& letters) {
    publish_state st;
    const auto& topic = impl_->cfg.kafka.dead_letter_topic;
    for (const auto& d : letters) {
        const std::string partition = std::to_string(d.source.partition);
        const std::string offset = std::to_string(d.source.offset);
        const std::string set = impl_->cfg.feature_sets[d.set_index].display_name();  // S@N beyond version 1
        rd_kafka_headers_t* headers = rd_kafka_headers_new(5);
        rd_kafka_header_add(headers, "sluice.error", -1, d.error.data(), static_cast<ssize_t>(d.error.size()));
        rd_kafka_header_add(headers, "sluice.feature_set", -1, set.data(), static_cast<ssize_t>(set.size()));
        rd_kafka_header_add(headers, "sluice.source.topic", -1, d.source.topic.data(),
                            static_cast<ssize_t>(d.source.topic.size()));
        rd_kafka_header_add(headers, "sluice.source.partition", -1, partition.data(),
                            static_cast<ssize_t>(partition.size()));
        rd_kafka_header_add(headers, "sluice.source.offset", -1, offset.data(), static_cast<ssize_t>(offset.size()));
        st.outstanding.fetch_add(1);
        // A tombstone stays a null value; anything else is the original bytes.
        const bool null_value = d.payload.empty();
        auto err = kafka::produce_copy(impl_->rk, topic, {}, d.payload, null_value, headers, &st);
        if (err) {
            rd_kafka_headers_destroy(headers);
            st.outstanding.fetch_sub(1);
            rd_kafka_flush(impl_->rk, delivery_timeout_ms);  // let earlier reports land before st goes away
            return status::failure(std::string("dead-letter topic ") + topic + ": " + rd_kafka_err2str(err),
                                   permanent(err) ? error_kind::permanent : error_kind::retryable);
        }
    }
    // Wait for every report of this call (they reference st).
    while (st.outstanding.load() > 0) rd_kafka_poll(impl_->rk, 100);
    if (!st.first_error.empty())
        return status::failure("dead-letter topic " + topic + ": " + st.first_error,
                               st.first_permanent ? error_kind::permanent : error_kind::retryable);
    return status::success();
}

}  // namespace sluice
