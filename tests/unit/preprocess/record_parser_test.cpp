// The record parser: what a user's Kafka event becomes — a typed record, or a dead letter that
// says why and keeps everything needed to find and replay the message.

#include "sluice/preprocess/record_parser.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <variant>

namespace sluice {
namespace {

constexpr std::int64_t nov21_10h = 1795255200000;  // 2026-11-21T10:00:00Z
constexpr std::int64_t now = 1795255260000;
constexpr std::int64_t max_message = 512;

// Field positions in the declared order.
enum : std::size_t { clicks, spend, premium, country, seen_at, extra, big };

field_config field(std::string name, field_type type) {
    field_config f;
    f.name = std::move(name);
    f.type = type;
    return f;
}

config make_config() {
    config cfg;
    cfg.kafka.max_message_bytes = max_message;
    feature_set_config other;
    other.name = "item_stats";
    other.topic = "item-events";
    other.key_field = "item_id";
    other.event_time_field = "time";
    other.fields.push_back(field("views", field_type::int64));
    cfg.feature_sets.push_back(other);

    feature_set_config set;
    set.name = "user_activity";
    set.topic = "user-events";
    set.key_field = "user_id";
    set.event_time_field = "ts";
    auto c = field("clicks", field_type::int64);
    c.required = true;
    c.min = 0;
    c.max = 1000;
    set.fields.push_back(c);
    auto s = field("spend", field_type::float64);
    s.min = 0;
    set.fields.push_back(s);
    set.fields.push_back(field("premium", field_type::boolean));
    auto co = field("country", field_type::string);
    co.default_value = std::string("??");
    set.fields.push_back(co);
    set.fields.push_back(field("seen_at", field_type::timestamp));
    set.fields.push_back(field("extra", field_type::json));
    set.fields.push_back(field("big", field_type::int64));  // no bounds: the int64 range itself
    cfg.feature_sets.push_back(set);
    return cfg;
}

// RFC 3629 UTF-8 with no NUL: what PostgreSQL text and Kafka headers can hold.
bool is_valid_utf8_without_nul(const std::string& s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == 0) return false;
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        std::uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

class PreprocessRecordParser : public ::testing::Test {
protected:
    raw_message message(std::string payload) const {
        raw_message m;
        m.set_index = 1;
        m.consumer_index = 0;
        m.source.topic = "user-events";
        m.source.partition = 2;
        m.source.offset = 41;
        m.kafka_timestamp_ms = now - 5;
        m.payload = std::move(payload);
        return m;
    }

    processed parse(const raw_message& m) const { return parser_.parse(m, now); }
    processed parse(std::string payload) const { return parse(message(std::move(payload))); }

    // Parses an event that must become a record; fails the test with the dead letter's reason otherwise.
    record expect_record(std::string payload) const {
        auto p = parse(payload);
        if (auto* d = std::get_if<dead_letter>(&p)) {
            ADD_FAILURE() << "expected a record for " << payload << "\ngot a dead letter: " << d->error;
            return record{};
        }
        return std::get<record>(p);
    }

    // Parses an event that must become a dead letter; checks what every dead letter keeps.
    dead_letter expect_dead_letter(const raw_message& m) const {
        auto p = parse(m);
        if (!std::holds_alternative<dead_letter>(p)) {
            ADD_FAILURE() << "expected a dead letter for " << m.payload << ", got a record";
            return dead_letter{};
        }
        auto d = std::get<dead_letter>(p);
        EXPECT_EQ(d.payload, m.payload);
        EXPECT_EQ(d.set_index, m.set_index);
        EXPECT_EQ(d.source.topic, m.source.topic);
        EXPECT_EQ(d.source.partition, m.source.partition);
        EXPECT_EQ(d.source.offset, m.source.offset);
        EXPECT_EQ(d.received_at_ms, now);
        EXPECT_FALSE(d.error.empty());
        EXPECT_TRUE(is_valid_utf8_without_nul(d.error)) << "error text is not valid UTF-8: " << d.error;
        return d;
    }
    dead_letter expect_dead_letter(std::string payload) const { return expect_dead_letter(message(std::move(payload))); }

    // A valid event whose `name` field has the raw JSON `raw` (clicks is otherwise 3).
    static std::string event_with(const std::string& name, const std::string& raw) {
        std::string s = R"({"user_id":"u1","ts":1795255200000)";
        if (name != "clicks") s += R"(,"clicks":3)";
        return s + ",\"" + name + "\":" + raw + "}";
    }

    ::testing::AssertionResult coerces(const std::string& name, std::size_t index, const std::string& raw,
                                       const value& expected) const {
        const auto payload = event_with(name, raw);
        auto p = parse(payload);
        if (auto* d = std::get_if<dead_letter>(&p))
            return ::testing::AssertionFailure() << payload << " was refused: " << d->error;
        const auto& r = std::get<record>(p);
        if (r.values.size() <= index) return ::testing::AssertionFailure() << "too few values";
        if (r.values[index] != expected)
            return ::testing::AssertionFailure()
                   << payload << " gave alternative " << r.values[index].index() << " != expected alternative "
                   << expected.index() << " (or a different value)";
        return ::testing::AssertionSuccess();
    }

    // The event is refused and the reason names the field and contains `fragment`.
    ::testing::AssertionResult refuses(const std::string& name, const std::string& raw,
                                       const std::string& fragment = "") const {
        const auto payload = event_with(name, raw);
        auto p = parse(payload);
        if (!std::holds_alternative<dead_letter>(p)) return ::testing::AssertionFailure() << payload << " was accepted";
        const auto& error = std::get<dead_letter>(p).error;
        if (error.find("'" + name + "'") == std::string::npos)
            return ::testing::AssertionFailure() << "error does not name '" << name << "': " << error;
        if (error.find(fragment) == std::string::npos)
            return ::testing::AssertionFailure() << "error lacks \"" << fragment << "\": " << error;
        return ::testing::AssertionSuccess();
    }

    config cfg_ = make_config();
    record_parser parser_{cfg_};
};

TEST_F(PreprocessRecordParser, ValidEventBecomesATypedRecordInDeclaredOrder) {
    // Fields in a different order than declared, plus one the set does not declare.
    auto r = expect_record(R"({"extra":{"b":[1,2],"a":null},"unknown":"ignored","seen_at":"2026-11-21T09:00:00Z",)"
                           R"("country":"DE","premium":true,"spend":12.5,"clicks":17,"big":-5,)"
                           R"("ts":"2026-11-21T10:00:00.250Z","user_id":"user-42"})");
    EXPECT_EQ(r.set_index, 1u);
    EXPECT_EQ(r.key, "user-42");
    EXPECT_EQ(r.event_time_ms, nov21_10h + 250);
    EXPECT_EQ(r.ingested_at_ms, now);
    EXPECT_EQ(r.source.topic, "user-events");
    EXPECT_EQ(r.source.partition, 2);
    EXPECT_EQ(r.source.offset, 41);
    ASSERT_EQ(r.values.size(), 7u);
    EXPECT_EQ(r.values[clicks], value{std::int64_t{17}});
    EXPECT_EQ(r.values[spend], value{12.5});
    EXPECT_EQ(r.values[premium], value{true});
    EXPECT_EQ(r.values[country], value{std::string("DE")});
    EXPECT_EQ(r.values[seen_at], value{nov21_10h - 3600000});
    EXPECT_EQ(r.values[extra], value{std::string(R"({"a":null,"b":[1,2]})")});
    EXPECT_EQ(r.values[big], value{std::int64_t{-5}});
}

TEST_F(PreprocessRecordParser, ParsesTheOtherSetBySetIndex) {
    auto m = message(R"({"item_id":"i-1","time":1795255200000,"views":9,"clicks":"not declared here"})");
    m.set_index = 0;
    auto p = parse(m);
    ASSERT_TRUE(std::holds_alternative<record>(p)) << std::get<dead_letter>(p).error;
    const auto& r = std::get<record>(p);
    EXPECT_EQ(r.set_index, 0u);
    EXPECT_EQ(r.key, "i-1");
    ASSERT_EQ(r.values.size(), 1u);
    EXPECT_EQ(r.values[0], value{std::int64_t{9}});
}

TEST_F(PreprocessRecordParser, EventTimeAsRfc3339WithOffset) {
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":"2026-11-21T12:00:00+02:00","clicks":1})").event_time_ms, nov21_10h);
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":"2026-11-21T04:30:00.5-05:30","clicks":1})").event_time_ms,
              nov21_10h + 500);
}

TEST_F(PreprocessRecordParser, EventTimeAsEpochMillisecondsIntegerOrString) {
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":1795255200123,"clicks":1})").event_time_ms, nov21_10h + 123);
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":"1795255200123","clicks":1})").event_time_ms, nov21_10h + 123);
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":0,"clicks":1})").event_time_ms, 0);
}

TEST_F(PreprocessRecordParser, MissingEventTimeIsADeadLetter) {
    auto d = expect_dead_letter(R"({"user_id":"u","clicks":1})");
    EXPECT_NE(d.error.find("'ts'"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find("missing"), std::string::npos) << d.error;
    auto n = expect_dead_letter(R"({"user_id":"u","ts":null,"clicks":1})");
    EXPECT_NE(n.error.find("'ts'"), std::string::npos) << n.error;
}

TEST_F(PreprocessRecordParser, InvalidEventTimeIsADeadLetter) {
    for (const char* ts : {R"("yesterday")", R"("2026-02-30T00:00:00Z")", R"("2026-11-21T10:00:00")", "-1",
                           R"("-1")", "1795255200000.5", "true", R"({"ms":1})", "[1795255200000]",
                           "253402300800000", R"("10000-01-01T00:00:00Z")", R"("")"}) {
        auto d = expect_dead_letter(std::string(R"({"user_id":"u","clicks":1,"ts":)") + ts + "}");
        EXPECT_NE(d.error.find("event time field 'ts'"), std::string::npos) << ts << ": " << d.error;
    }
    // The last millisecond of 9999 is still accepted.
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":253402300799999,"clicks":1})").event_time_ms, 253402300799999);
}

TEST_F(PreprocessRecordParser, IntCoercion) {
    EXPECT_TRUE(coerces("clicks", clicks, "42", value{std::int64_t{42}}));
    EXPECT_TRUE(coerces("clicks", clicks, R"("42")", value{std::int64_t{42}}));
    EXPECT_TRUE(coerces("clicks", clicks, "42.0", value{std::int64_t{42}}));
    EXPECT_TRUE(coerces("big", big, R"("-7")", value{std::int64_t{-7}}));
    EXPECT_TRUE(coerces("big", big, "4.2e3", value{std::int64_t{4200}}));
    EXPECT_TRUE(refuses("clicks", "42.5", "not an integer"));
    EXPECT_TRUE(refuses("clicks", R"("42.5")", "not an integer"));
    EXPECT_TRUE(refuses("clicks", R"("forty")"));
    EXPECT_TRUE(refuses("clicks", R"("")"));
    EXPECT_TRUE(refuses("clicks", R"(" 42")"));
    EXPECT_TRUE(refuses("clicks", "true"));
    EXPECT_TRUE(refuses("clicks", "[42]"));
    EXPECT_TRUE(refuses("clicks", R"({"n":42})"));
}

TEST_F(PreprocessRecordParser, IntOutOfInt64RangeIsRefused) {
    EXPECT_TRUE(coerces("big", big, "9223372036854775807", value{std::int64_t{INT64_MAX}}));
    EXPECT_TRUE(coerces("big", big, "-9223372036854775808", value{std::int64_t{INT64_MIN}}));
    EXPECT_TRUE(refuses("big", "9223372036854775808", "range"));
    EXPECT_TRUE(refuses("big", "18446744073709551615", "range"));
    EXPECT_TRUE(refuses("big", "1e19", "range"));
    EXPECT_TRUE(refuses("big", "-1e19", "range"));
    EXPECT_TRUE(refuses("big", R"("9223372036854775808")"));
    EXPECT_TRUE(refuses("big", R"("-9223372036854775809")"));
    // One below INT64_MIN: the JSON parser can only hold it as a double, which rounds to exactly
    // INT64_MIN; it must be refused, not stored as a different number.
    EXPECT_TRUE(refuses("big", "-9223372036854775809", "range"));
}

TEST_F(PreprocessRecordParser, IntBounds) {
    EXPECT_TRUE(coerces("clicks", clicks, "0", value{std::int64_t{0}}));
    EXPECT_TRUE(coerces("clicks", clicks, "1000", value{std::int64_t{1000}}));
    EXPECT_TRUE(refuses("clicks", "-1", "below the minimum"));
    EXPECT_TRUE(refuses("clicks", "1001", "above the maximum"));
    // Bounds apply after coercion.
    EXPECT_TRUE(refuses("clicks", R"("1001")", "above the maximum"));
    EXPECT_TRUE(refuses("clicks", "-1.0", "below the minimum"));
}

TEST_F(PreprocessRecordParser, DoubleCoercionAndBounds) {
    EXPECT_TRUE(coerces("spend", spend, "3.5", value{3.5}));
    EXPECT_TRUE(coerces("spend", spend, R"("3.5")", value{3.5}));
    EXPECT_TRUE(coerces("spend", spend, "7", value{7.0}));  // an integer becomes a double
    EXPECT_TRUE(coerces("spend", spend, "0", value{0.0}));
    EXPECT_TRUE(coerces("spend", spend, "1e300", value{1e300}));
    EXPECT_TRUE(refuses("spend", "-0.01", "below the minimum"));
    EXPECT_TRUE(refuses("spend", R"("-3.5")", "below the minimum"));
    EXPECT_TRUE(refuses("spend", R"("3.5 dollars")"));
    EXPECT_TRUE(refuses("spend", R"("")"));
    EXPECT_TRUE(refuses("spend", "true"));
    EXPECT_TRUE(refuses("spend", "[3.5]"));
}

TEST_F(PreprocessRecordParser, NonFiniteDoublesAreRefused) {
    // JSON has no NaN or infinity literals: the event is not JSON at all.
    EXPECT_TRUE(expect_dead_letter(event_with("spend", "NaN")).error.starts_with("malformed JSON"));
    EXPECT_TRUE(expect_dead_letter(event_with("spend", "Infinity")).error.starts_with("malformed JSON"));
    // As strings they parse as numbers but are not finite.
    for (const char* s : {R"("NaN")", R"("nan")", R"("inf")", R"("-inf")", R"("Infinity")", R"("1e400")"})
        EXPECT_TRUE(refuses("spend", s)) << s;
}

TEST_F(PreprocessRecordParser, NumberOverflowIsADeadLetterNotAnException) {
    // 1e400 is valid JSON syntax but overflows a double; the parser must not throw across the
    // preprocess worker thread (that would end the process).
    for (const char* raw : {"1e400", "-1e400"}) {
        processed p = record{};
        ASSERT_NO_THROW(p = parse(event_with("spend", raw))) << raw;
        ASSERT_TRUE(std::holds_alternative<dead_letter>(p)) << raw;
        EXPECT_TRUE(std::get<dead_letter>(p).error.starts_with("malformed JSON")) << std::get<dead_letter>(p).error;
    }
}

TEST_F(PreprocessRecordParser, BoolCoercion) {
    EXPECT_TRUE(coerces("premium", premium, "true", value{true}));
    EXPECT_TRUE(coerces("premium", premium, "false", value{false}));
    EXPECT_TRUE(coerces("premium", premium, R"("true")", value{true}));
    EXPECT_TRUE(coerces("premium", premium, R"("false")", value{false}));
    EXPECT_TRUE(coerces("premium", premium, "1", value{true}));
    EXPECT_TRUE(coerces("premium", premium, "0", value{false}));
    EXPECT_TRUE(refuses("premium", "2", "expected a bool"));
    EXPECT_TRUE(refuses("premium", "-1"));
    EXPECT_TRUE(refuses("premium", "1.0"));
    EXPECT_TRUE(refuses("premium", R"("1")"));
    EXPECT_TRUE(refuses("premium", R"("yes")"));
    EXPECT_TRUE(refuses("premium", R"("TRUE")"));
    EXPECT_TRUE(refuses("premium", "[true]"));
}

TEST_F(PreprocessRecordParser, StringCoercion) {
    EXPECT_TRUE(coerces("country", country, R"("DE")", value{std::string("DE")}));
    EXPECT_TRUE(coerces("country", country, R"("")", value{std::string("")}));
    EXPECT_TRUE(coerces("country", country, R"("Zürich \"Z\"")", value{std::string("Zürich \"Z\"")}));
    EXPECT_TRUE(coerces("country", country, "42", value{std::string("42")}));
    EXPECT_TRUE(coerces("country", country, "-2.5", value{std::string("-2.5")}));
    EXPECT_TRUE(coerces("country", country, "true", value{std::string("true")}));
    EXPECT_TRUE(refuses("country", R"({"code":"DE"})", "expected a string"));
    EXPECT_TRUE(refuses("country", R"(["DE"])", "expected a string"));
}

TEST_F(PreprocessRecordParser, TimestampFieldCoercion) {
    EXPECT_TRUE(coerces("seen_at", seen_at, R"("2026-11-21T12:00:00+02:00")", value{nov21_10h}));
    EXPECT_TRUE(coerces("seen_at", seen_at, "1795255200000", value{nov21_10h}));
    EXPECT_TRUE(coerces("seen_at", seen_at, R"("1795255200000")", value{nov21_10h}));
    EXPECT_TRUE(refuses("seen_at", R"("soon")"));
    EXPECT_TRUE(refuses("seen_at", "-5"));
    EXPECT_TRUE(refuses("seen_at", "2.5"));
    EXPECT_TRUE(refuses("seen_at", "false"));
}

TEST_F(PreprocessRecordParser, JsonFieldKeepsCompactText) {
    EXPECT_TRUE(coerces("extra", extra, R"({ "b" : 1, "a" : [ 1, 2 ] })", value{std::string(R"({"a":[1,2],"b":1})")}));
    EXPECT_TRUE(coerces("extra", extra, R"("text")", value{std::string(R"("text")")}));
    EXPECT_TRUE(coerces("extra", extra, "5", value{std::string("5")}));
    EXPECT_TRUE(coerces("extra", extra, "[true,false]", value{std::string("[true,false]")}));
    EXPECT_TRUE(coerces("extra", extra, R"({"city":"Zürich"})", value{std::string(R"({"city":"Zürich"})")}));
}

TEST_F(PreprocessRecordParser, JsonFieldWithABackslashBeforeU0000IsNotANul) {
    // The JSON string "C:\\u0000" is the seven characters C : \ u 0 0 0 0 — no NUL anywhere, and
    // PostgreSQL jsonb stores it fine. It must not be mistaken for a \u0000 escape.
    EXPECT_TRUE(coerces("extra", extra, R"({"path":"C:\\u0000"})", value{std::string(R"({"path":"C:\\u0000"})")}));
    EXPECT_TRUE(coerces("country", country, R"("C:\\u0000")", value{std::string("C:\\u0000")}));
}

TEST_F(PreprocessRecordParser, MissingRequiredFieldNamesIt) {
    auto d = expect_dead_letter(R"({"user_id":"u","ts":1795255200000,"spend":1})");
    EXPECT_NE(d.error.find("'clicks'"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find("required"), std::string::npos) << d.error;
    auto n = expect_dead_letter(R"({"user_id":"u","ts":1795255200000,"clicks":null})");
    EXPECT_NE(n.error.find("'clicks'"), std::string::npos) << n.error;
}

TEST_F(PreprocessRecordParser, MissingOptionalFieldIsItsDefaultOrNull) {
    auto r = expect_record(R"({"user_id":"u","ts":1795255200000,"clicks":1})");
    ASSERT_EQ(r.values.size(), 7u);
    EXPECT_EQ(r.values[clicks], value{std::int64_t{1}});
    EXPECT_EQ(r.values[spend], value{});
    EXPECT_EQ(r.values[premium], value{});
    EXPECT_EQ(r.values[country], value{std::string("??")});
    EXPECT_EQ(r.values[seen_at], value{});
    EXPECT_EQ(r.values[extra], value{});
    EXPECT_EQ(r.values[big], value{});
    // An explicit null is the same as absent.
    auto n = expect_record(R"({"user_id":"u","ts":1795255200000,"clicks":1,"country":null,"spend":null})");
    ASSERT_EQ(n.values.size(), 7u);
    EXPECT_EQ(n.values[country], value{std::string("??")});
    EXPECT_EQ(n.values[spend], value{});
}

TEST_F(PreprocessRecordParser, KeyRules) {
    auto missing = expect_dead_letter(R"({"ts":1795255200000,"clicks":1})");
    EXPECT_NE(missing.error.find("'user_id'"), std::string::npos) << missing.error;
    EXPECT_NE(missing.error.find("missing"), std::string::npos) << missing.error;
    auto null_key = expect_dead_letter(R"({"user_id":null,"ts":1795255200000,"clicks":1})");
    EXPECT_NE(null_key.error.find("'user_id'"), std::string::npos) << null_key.error;
    auto empty = expect_dead_letter(R"({"user_id":"","ts":1795255200000,"clicks":1})");
    EXPECT_NE(empty.error.find("'user_id'"), std::string::npos) << empty.error;
    EXPECT_NE(empty.error.find("empty"), std::string::npos) << empty.error;

    EXPECT_EQ(expect_record(R"({"user_id":123,"ts":1795255200000,"clicks":1})").key, "123");
    EXPECT_EQ(expect_record(R"({"user_id":-8,"ts":1795255200000,"clicks":1})").key, "-8");
    EXPECT_EQ(expect_record(R"({"user_id":"Zoë 🙂","ts":1795255200000,"clicks":1})").key, "Zoë 🙂");
    for (const char* k : {"1.5", "true", R"({"id":1})", "[1]"}) {
        auto d = expect_dead_letter(std::string(R"({"ts":1795255200000,"clicks":1,"user_id":)") + k + "}");
        EXPECT_NE(d.error.find("'user_id'"), std::string::npos) << k << ": " << d.error;
    }
}

TEST_F(PreprocessRecordParser, KeyOfAtMost1024Bytes) {
    cfg_.kafka.max_message_bytes = 1 << 20;  // the parser reads the config it was given, by reference
    const std::string longest(1024, 'k');
    EXPECT_EQ(expect_record(R"({"user_id":")" + longest + R"(","ts":1,"clicks":1})").key, longest);
    auto d = expect_dead_letter(R"({"user_id":")" + longest + R"(k","ts":1,"clicks":1})");
    EXPECT_NE(d.error.find("'user_id'"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find("1024"), std::string::npos) << d.error;
}

TEST_F(PreprocessRecordParser, MalformedJsonIsADeadLetter) {
    for (const char* payload : {R"({"user_id":"u","ts":1,)", "{", "not json", R"({"user_id":"u"} trailing)",
                                R"({'user_id':'u'})", R"({"user_id":"u",})"}) {
        auto d = expect_dead_letter(payload);
        EXPECT_TRUE(d.error.starts_with("malformed JSON")) << payload << ": " << d.error;
    }
}

TEST_F(PreprocessRecordParser, InvalidUtf8IsADeadLetterWithAValidUtf8Error) {
    // A lone continuation byte, a truncated sequence, an overlong encoding, a UTF-16 surrogate,
    // a code point above U+10FFFF, and a Latin-1 byte: each quoted by the JSON parser's message.
    for (const std::string& bad : {std::string("\x80"), std::string("\xC3("), std::string("\xC0\xAF"),
                                  std::string("\xED\xA0\x80"), std::string("\xF4\x90\x80\x80"),
                                  std::string("caf\xE9"), std::string("\xE2\x82")}) {
        const auto payload = R"({"user_id":"u1","ts":1795255200000,"clicks":1,"country":")" + bad + R"("})";
        auto d = expect_dead_letter(payload);
        EXPECT_TRUE(d.error.starts_with("malformed JSON")) << d.error;
        EXPECT_EQ(d.payload, payload);  // the original bytes, not a repaired copy
    }
    // Invalid bytes in the key, and in a field the set does not declare, are refused all the same.
    auto key = expect_dead_letter("{\"user_id\":\"u\xFF\",\"ts\":1795255200000,\"clicks\":1}");
    EXPECT_TRUE(key.error.starts_with("malformed JSON")) << key.error;
    auto undeclared = expect_dead_letter("{\"user_id\":\"u\",\"ts\":1795255200000,\"clicks\":1,\"x\":\"\xFE\"}");
    EXPECT_TRUE(undeclared.error.starts_with("malformed JSON")) << undeclared.error;
}

TEST_F(PreprocessRecordParser, RawControlBytesGiveAValidUtf8Error) {
    // A raw NUL and other control bytes inside and outside strings: the error must hold no NUL.
    const std::string nul(1, '\0');
    const std::string in_string = R"({"user_id":"u)" + nul + R"(","ts":1,"clicks":1})";
    EXPECT_TRUE(expect_dead_letter(in_string).error.starts_with("malformed JSON"));
    const std::string outside = "{" + nul + "}";
    EXPECT_TRUE(expect_dead_letter(outside).error.starts_with("malformed JSON"));
    EXPECT_TRUE(expect_dead_letter("{\"user_id\":\"u\x01\",\"ts\":1,\"clicks\":1}").error.starts_with("malformed JSON"));
}

TEST_F(PreprocessRecordParser, NulEscapeInAStringFieldIsADeadLetter) {
    auto d = expect_dead_letter(event_with("country", R"("D\u0000E")"));
    EXPECT_NE(d.error.find("'country'"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find("NUL"), std::string::npos) << d.error;
}

TEST_F(PreprocessRecordParser, NulEscapeInTheKeyIsADeadLetter) {
    for (const char* key : {R"("u\u0000")", R"("\u0000")", R"("\u0000abc")"}) {
        auto d = expect_dead_letter(std::string(R"({"ts":1795255200000,"clicks":1,"user_id":)") + key + "}");
        EXPECT_NE(d.error.find("'user_id'"), std::string::npos) << key << ": " << d.error;
        EXPECT_NE(d.error.find("NUL"), std::string::npos) << key << ": " << d.error;
    }
}

TEST_F(PreprocessRecordParser, NulEscapeInsideAJsonFieldIsADeadLetter) {
    for (const char* raw : {R"({"a":"x\u0000y"})", R"(["\u0000"])", R"({"k\u0000":1})", R"("\u0000")"}) {
        auto d = expect_dead_letter(event_with("extra", raw));
        EXPECT_NE(d.error.find("'extra'"), std::string::npos) << raw << ": " << d.error;
        EXPECT_NE(d.error.find("NUL"), std::string::npos) << raw << ": " << d.error;
    }
}

TEST_F(PreprocessRecordParser, MessageOverMaxMessageBytesIsADeadLetter) {
    // A valid event padded with an undeclared field to exactly the limit, then one byte more.
    auto padded = [](std::size_t size) {
        std::string head = R"({"user_id":"u1","ts":1795255200000,"clicks":1,"pad":")";
        std::string tail = R"("})";
        return head + std::string(size - head.size() - tail.size(), 'p') + tail;
    };
    const auto at_limit = padded(max_message);
    ASSERT_EQ(at_limit.size(), static_cast<std::size_t>(max_message));
    EXPECT_EQ(expect_record(at_limit).key, "u1");

    const auto over = padded(max_message + 1);
    auto d = expect_dead_letter(over);
    EXPECT_NE(d.error.find("max_message_bytes"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find(std::to_string(max_message + 1)), std::string::npos) << d.error;
}

TEST_F(PreprocessRecordParser, EmptyPayloadIsADeadLetter) {
    auto d = expect_dead_letter("");
    EXPECT_NE(d.error.find("empty"), std::string::npos) << d.error;
}

TEST_F(PreprocessRecordParser, TombstoneIsADeadLetter) {
    auto m = message("");
    m.has_value = false;
    auto d = expect_dead_letter(m);
    EXPECT_NE(d.error.find("tombstone"), std::string::npos) << d.error;
    // Even when the message carries bytes, a null value is not a record.
    auto with_bytes = message(R"({"user_id":"u1","ts":1795255200000,"clicks":1})");
    with_bytes.has_value = false;
    EXPECT_NE(expect_dead_letter(with_bytes).error.find("tombstone"), std::string::npos);
}

TEST_F(PreprocessRecordParser, NonObjectEventIsADeadLetter) {
    for (const char* payload : {R"([{"user_id":"u1","ts":1795255200000,"clicks":1}])", "[]", "42", R"("u1")",
                                "null", "true"}) {
        auto d = expect_dead_letter(payload);
        EXPECT_NE(d.error.find("not a JSON object"), std::string::npos) << payload << ": " << d.error;
    }
}

TEST_F(PreprocessRecordParser, DeadLetterKeepsPayloadAndSource) {
    auto m = message(R"({"user_id":"u1","ts":1795255200000,"clicks":"many"})");
    m.source.topic = "user-events";
    m.source.partition = 7;
    m.source.offset = 123456789012;
    auto p = parse(m);
    ASSERT_TRUE(std::holds_alternative<dead_letter>(p));
    const auto& d = std::get<dead_letter>(p);
    EXPECT_EQ(d.payload, m.payload);
    EXPECT_EQ(d.source.topic, "user-events");
    EXPECT_EQ(d.source.partition, 7);
    EXPECT_EQ(d.source.offset, 123456789012);
    EXPECT_EQ(d.set_index, 1u);
    EXPECT_EQ(d.received_at_ms, now);
    EXPECT_NE(d.error.find("'clicks'"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find("many"), std::string::npos) << d.error;  // the offending value is quoted
}

TEST_F(PreprocessRecordParser, ErrorQuotingLongValuesIsShortAndValidUtf8) {
    // A long multi-byte value is quoted in the error; cutting it must not split a character.
    std::string long_text;
    for (int i = 0; i < 100; ++i) long_text += "é";
    auto d = expect_dead_letter(event_with("clicks", "\"" + long_text + "\""));
    EXPECT_LT(d.error.size(), 200u) << d.error;
    EXPECT_NE(d.error.find("'clicks'"), std::string::npos) << d.error;
    for (int shift = 0; shift < 4; ++shift) {
        auto s = expect_dead_letter(event_with("clicks", "\"" + std::string(shift, 'a') + long_text + "\""));
        EXPECT_TRUE(is_valid_utf8_without_nul(s.error)) << s.error;
    }
}

}  // namespace
}  // namespace sluice
