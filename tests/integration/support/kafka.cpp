#include "integration/support/kafka.hpp"

#include <stdexcept>
#include <thread>
#include <vector>

namespace sluice::it {

namespace {

void set(rd_kafka_conf_t* conf, const char* name, const std::string& value) {
    char err[512];
    if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("rd_kafka_conf_set ") + name + ": " + err);
    }
}

rd_kafka_t* make(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
    if (rk == nullptr) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("rd_kafka_new: ") + err);
    }
    return rk;
}

}  // namespace

kafka_cluster::kafka_cluster(int brokers) {
    // The host handle never talks to a broker itself; keep its "no bootstrap.servers" quiet.
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    set(conf, "log_level", "3");
    host_ = make(RD_KAFKA_PRODUCER, conf);
    mcluster_ = rd_kafka_mock_cluster_new(host_, brokers);
    if (mcluster_ == nullptr) {
        rd_kafka_destroy(host_);
        throw std::runtime_error("rd_kafka_mock_cluster_new failed");
    }
    bootstraps_ = rd_kafka_mock_cluster_bootstraps(mcluster_);

    conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstraps_);
    set(conf, "enable.idempotence", "true");  // no reordering, no duplicates on retry
    set(conf, "linger.ms", "5");
    set(conf, "queue.buffering.max.messages", "1000000");
    set(conf, "message.timeout.ms", "60000");
    rd_kafka_conf_set_dr_msg_cb(conf, &kafka_cluster::on_delivery);
    rd_kafka_conf_set_opaque(conf, this);
    try {
        producer_ = make(RD_KAFKA_PRODUCER, conf);
    } catch (...) {
        rd_kafka_mock_cluster_destroy(mcluster_);
        rd_kafka_destroy(host_);
        throw;
    }
}

kafka_cluster::~kafka_cluster() {
    if (producer_ != nullptr) {
        rd_kafka_flush(producer_, 5000);
        rd_kafka_destroy(producer_);
    }
    if (mcluster_ != nullptr) rd_kafka_mock_cluster_destroy(mcluster_);
    if (host_ != nullptr) rd_kafka_destroy(host_);
}

void kafka_cluster::create_topic(const std::string& topic, int partitions) {
    auto err = rd_kafka_mock_topic_create(mcluster_, topic.c_str(), partitions, 1);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw std::runtime_error("mock topic create " + topic + ": " + rd_kafka_err2str(err));
    }
}

void kafka_cluster::on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<kafka_cluster*>(opaque);
    auto id = reinterpret_cast<std::uintptr_t>(msg->_private);
    std::lock_guard lock(self->mu_);
    if (id >= self->deliveries_.size()) return;
    delivery& d = self->deliveries_[id];
    d.done = true;
    d.partition = msg->partition;
    d.offset = msg->offset;
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) d.error = rd_kafka_err2str(msg->err);
}

std::size_t kafka_cluster::produce(const std::string& topic, const std::optional<std::string>& key,
                                   const std::optional<std::string>& value) {
    std::size_t id;
    {
        std::lock_guard lock(mu_);
        id = deliveries_.size();
        deliveries_.emplace_back();
    }
    // The RD_KAFKA_V_* macros cast their arguments textually: pass plain variables.
    const char* key_ptr = key ? key->data() : nullptr;
    const std::size_t key_len = key ? key->size() : 0;
    char* value_ptr = value ? const_cast<char*>(value->data()) : nullptr;
    const std::size_t value_len = value ? value->size() : 0;
    void* opaque = reinterpret_cast<void*>(static_cast<std::uintptr_t>(id));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
        auto err = rd_kafka_producev(
            producer_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key_ptr, key_len), RD_KAFKA_V_VALUE(value_ptr, value_len), RD_KAFKA_V_OPAQUE(opaque),
            RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || std::chrono::steady_clock::now() >= deadline) {
            std::lock_guard lock(mu_);
            deliveries_[id].done = true;
            deliveries_[id].error = rd_kafka_err2str(err);
            throw std::runtime_error("produce to " + topic + ": " + rd_kafka_err2str(err));
        }
        rd_kafka_poll(producer_, 10);
    }
    rd_kafka_poll(producer_, 0);
    return id;
}

void kafka_cluster::flush(std::chrono::milliseconds timeout) {
    auto err = rd_kafka_flush(producer_, static_cast<int>(timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw std::runtime_error(std::string("flush: ") + rd_kafka_err2str(err) + ", " +
                                 std::to_string(rd_kafka_outq_len(producer_)) + " messages still queued");
    }
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < deliveries_.size(); ++i) {
        if (!deliveries_[i].done) throw std::runtime_error("message " + std::to_string(i) + " has no delivery report");
        if (!deliveries_[i].error.empty()) {
            throw std::runtime_error("message " + std::to_string(i) + " failed: " + deliveries_[i].error);
        }
    }
}

delivery kafka_cluster::delivery_of(std::size_t id) const {
    std::lock_guard lock(mu_);
    return id < deliveries_.size() ? deliveries_[id] : delivery{};
}

std::size_t kafka_cluster::produced() const {
    std::lock_guard lock(mu_);
    return deliveries_.size();
}

partition_offsets kafka_cluster::end_offsets(const std::string& topic, int partitions,
                                             std::chrono::milliseconds timeout) {
    partition_offsets out;
    for (int p = 0; p < partitions; ++p) {
        std::int64_t low = -1;
        std::int64_t high = -1;
        auto err = rd_kafka_query_watermark_offsets(producer_, topic.c_str(), p, &low, &high,
                                                    static_cast<int>(timeout.count()));
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            throw std::runtime_error("watermarks of " + topic + "/" + std::to_string(p) + ": " + rd_kafka_err2str(err));
        }
        out[p] = high;
    }
    return out;
}

rd_kafka_t* kafka_cluster::new_consumer(const std::string& group) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstraps_);
    set(conf, "group.id", group);
    set(conf, "enable.auto.commit", "false");
    set(conf, "log_level", "3");
    return make(RD_KAFKA_CONSUMER, conf);
}

partition_offsets kafka_cluster::committed_offsets(const std::string& group, const std::string& topic, int partitions,
                                                   std::chrono::milliseconds timeout) {
    rd_kafka_t* rk = new_consumer(group);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
    auto err = rd_kafka_committed(rk, list, static_cast<int>(timeout.count()));
    partition_offsets out;
    std::string failure;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = rd_kafka_err2str(err);
    } else {
        for (int i = 0; i < list->cnt; ++i) {
            const auto& tp = list->elems[i];
            if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR) failure = rd_kafka_err2str(tp.err);
            out[tp.partition] = tp.offset;
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    if (!failure.empty()) throw std::runtime_error("committed offsets of " + group + ": " + failure);
    return out;
}

int kafka_cluster::partitions_of(const std::string& topic, std::chrono::milliseconds timeout) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer_, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    auto err = rd_kafka_metadata(producer_, 0, rkt, &md, static_cast<int>(timeout.count()));
    rd_kafka_topic_destroy(rkt);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) throw std::runtime_error("metadata of " + topic + ": " + rd_kafka_err2str(err));
    int partitions = 0;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    if (partitions <= 0) throw std::runtime_error("metadata of " + topic + ": the broker does not know the topic");
    return partitions;
}

void kafka_cluster::commit_offsets(const std::string& group, const std::string& topic, const partition_offsets& offsets) {
    rd_kafka_t* rk = new_consumer(group);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
    for (const auto& [p, off] : offsets) rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = off;
    auto err = rd_kafka_commit(rk, list, 0);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw std::runtime_error("commit offsets of " + group + ": " + rd_kafka_err2str(err));
    }
}

}  // namespace sluice::it
