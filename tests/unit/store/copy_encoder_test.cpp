// The bytes the PostgreSQL store sends with COPY, checked against the formats PostgreSQL reads.
// Binary: the 11-byte signature "PGCOPY\n\377\r\n\0", 32-bit flags, a 32-bit header extension
// length; per tuple a 16-bit field count, per field a 32-bit length (-1: NULL) and the value in
// its type's send form (int8 and float8 big-endian, bool one byte, text as it is, timestamptz as
// 64-bit microseconds since 2000-01-01 UTC, jsonb a version byte 1 then the text); a -1 field
// count ends the data. Text: tab-separated columns, backslash escapes, \N for NULL.
// Every expected byte string is written out by hand.

#include "../../../src/store/postgres/copy_encoder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "common/small_set.hpp"

namespace sluice {
namespace {

using namespace std::string_literals;

// Bytes written as numbers.
std::string bytes(std::initializer_list<int> v) {
    std::string out;
    for (int b : v) out += static_cast<char>(b);
    return out;
}

// "50 47 43 ..." so that a failure shows where the bytes differ.
std::string hex(const std::string& s) {
    static const char* digits = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (!out.empty()) out += ' ';
        out += digits[c >> 4];
        out += digits[c & 0xf];
    }
    return out;
}

std::string binary(field_type type, const value& v) {
    std::string out;
    EXPECT_TRUE(pg::append_binary_value(out, type, v));
    return hex(out);
}

std::string text(field_type type, const value& v) {
    std::string out;
    pg::append_copy_value(out, type, v);
    return out;
}

constexpr std::int64_t y2000_ms = 946684800000;  // 2000-01-01T00:00:00.000Z

TEST(CopyEncoder, TheBinaryHeaderIsTheSignatureNoFlagsAndNoExtension) {
    const std::string expected = bytes({'P', 'G', 'C', 'O', 'P', 'Y', 0x0A, 0xFF, 0x0D, 0x0A, 0x00,  // signature
                                        0x00, 0x00, 0x00, 0x00,                                      // flags
                                        0x00, 0x00, 0x00, 0x00});                                    // extension
    EXPECT_EQ(hex(std::string(pg::copy_binary_header)), hex(expected));
}

TEST(CopyEncoder, BinaryIntegersAreEightBytesBigEndian) {
    EXPECT_EQ(binary(field_type::int64, std::int64_t{42}),
              hex(bytes({0, 0, 0, 8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A})));
    EXPECT_EQ(binary(field_type::int64, std::int64_t{-42}),
              hex(bytes({0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xD6})));
    EXPECT_EQ(binary(field_type::int64, std::int64_t{-1}),
              hex(bytes({0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})));
    EXPECT_EQ(binary(field_type::int64, std::numeric_limits<std::int64_t>::min()),
              hex(bytes({0, 0, 0, 8, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00})));
    EXPECT_EQ(binary(field_type::int64, std::numeric_limits<std::int64_t>::max()),
              hex(bytes({0, 0, 0, 8, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})));
}

TEST(CopyEncoder, BinaryDoublesAreTheirIeeeBitsBigEndian) {
    EXPECT_EQ(binary(field_type::float64, 1.5), hex(bytes({0, 0, 0, 8, 0x3F, 0xF8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00})));
    EXPECT_EQ(binary(field_type::float64, -2.25), hex(bytes({0, 0, 0, 8, 0xC0, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00})));
    EXPECT_EQ(binary(field_type::float64, 0.1), hex(bytes({0, 0, 0, 8, 0x3F, 0xB9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9A})));
    // An integer in a double column is sent as the double PostgreSQL would read from its text.
    EXPECT_EQ(binary(field_type::float64, std::int64_t{3}),
              hex(bytes({0, 0, 0, 8, 0x40, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00})));
}

TEST(CopyEncoder, BinaryBooleansAreOneByte) {
    EXPECT_EQ(binary(field_type::boolean, true), hex(bytes({0, 0, 0, 1, 0x01})));
    EXPECT_EQ(binary(field_type::boolean, false), hex(bytes({0, 0, 0, 1, 0x00})));
}

TEST(CopyEncoder, BinaryTextIsItsBytesUnescaped) {
    EXPECT_EQ(binary(field_type::string, "a\tb\\"s), hex(bytes({0, 0, 0, 4, 'a', 0x09, 'b', 0x5C})));
    EXPECT_EQ(binary(field_type::string, "\xC3\xA9"s), hex(bytes({0, 0, 0, 2, 0xC3, 0xA9})));  // é in UTF-8
    EXPECT_EQ(binary(field_type::string, ""s), hex(bytes({0, 0, 0, 0})));
}

TEST(CopyEncoder, BinaryJsonbIsVersionOneThenTheText) {
    EXPECT_EQ(binary(field_type::json, "{\"a\":1}"s),
              hex(bytes({0, 0, 0, 8, 0x01, '{', '"', 'a', '"', ':', '1', '}'})));
}

TEST(CopyEncoder, BinaryTimestampsAreMicrosecondsSince2000) {
    EXPECT_EQ(binary(field_type::timestamp, y2000_ms), hex(bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0})));
    EXPECT_EQ(binary(field_type::timestamp, y2000_ms + 1),  // +1000 us
              hex(bytes({0, 0, 0, 8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xE8})));
    EXPECT_EQ(binary(field_type::timestamp, y2000_ms - 1),  // 1999-12-31T23:59:59.999Z: -1000 us
              hex(bytes({0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC, 0x18})));
    EXPECT_EQ(binary(field_type::timestamp, std::int64_t{0}),  // the Unix epoch: -946684800000000 us
              hex(bytes({0, 0, 0, 8, 0xFF, 0xFC, 0xA2, 0xFE, 0xC4, 0xC8, 0x20, 0x00})));
}

TEST(CopyEncoder, ATimeOutsideMicrosecondsIsNotSentBinary) {
    std::string out = "x";
    EXPECT_FALSE(pg::put_timestamptz(out, std::numeric_limits<std::int64_t>::max()));
    EXPECT_FALSE(pg::put_timestamptz(out, std::numeric_limits<std::int64_t>::min()));
    EXPECT_FALSE(pg::append_binary_value(out, field_type::timestamp, std::numeric_limits<std::int64_t>::max()));
    EXPECT_EQ(out, "x") << "a refused time left bytes behind";
}

TEST(CopyEncoder, BinaryNullIsLengthMinusOneForEveryType) {
    for (auto type : {field_type::int64, field_type::float64, field_type::boolean, field_type::string,
                      field_type::timestamp, field_type::json})
        EXPECT_EQ(binary(type, value{}), hex(bytes({0xFF, 0xFF, 0xFF, 0xFF})));
}

TEST(CopyEncoder, AValueOfAnotherTypeIsNotSentBinary) {
    std::string out;
    EXPECT_FALSE(pg::append_binary_value(out, field_type::int64, "1"s));
    EXPECT_FALSE(pg::append_binary_value(out, field_type::int64, 1.5));
    EXPECT_FALSE(pg::append_binary_value(out, field_type::boolean, std::int64_t{1}));
    EXPECT_FALSE(pg::append_binary_value(out, field_type::float64, "1.5"s));
    EXPECT_FALSE(pg::append_binary_value(out, field_type::string, std::int64_t{1}));
    EXPECT_FALSE(pg::append_binary_value(out, field_type::json, true));
    EXPECT_FALSE(pg::append_binary_value(out, field_type::timestamp, 1.5));
    EXPECT_EQ(out, "");
}

TEST(CopyEncoder, TextEscapesBackslashTabNewlineAndCarriageReturn) {
    std::string out;
    pg::append_copy_text(out, "a\\b\tc\nd\re \"f\" g");
    EXPECT_EQ(out, "a\\\\b\\tc\\nd\\re \"f\" g");
}

TEST(CopyEncoder, TextValuesOfEveryType) {
    EXPECT_EQ(text(field_type::int64, std::int64_t{-42}), "-42");
    EXPECT_EQ(text(field_type::int64, std::numeric_limits<std::int64_t>::min()), "-9223372036854775808");
    EXPECT_EQ(text(field_type::float64, 1.5), "1.5");
    EXPECT_EQ(text(field_type::float64, -0.1), "-0.1");
    EXPECT_EQ(text(field_type::float64, 1e300), "1e+300");
    EXPECT_EQ(text(field_type::boolean, true), "t");
    EXPECT_EQ(text(field_type::boolean, false), "f");
    EXPECT_EQ(text(field_type::string, "tab\there\nnew \\ back"s), "tab\\there\\nnew \\\\ back");
    EXPECT_EQ(text(field_type::json, "{\"a\":\"x\\ty\"}"s), "{\"a\":\"x\\\\ty\"}");
    EXPECT_EQ(text(field_type::timestamp, std::int64_t{0}), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(text(field_type::timestamp, y2000_ms - 1), "1999-12-31T23:59:59.999Z");
}

TEST(CopyEncoder, TextNullIsBackslashNAndTheStringBackslashNIsEscaped) {
    for (auto type : {field_type::int64, field_type::float64, field_type::boolean, field_type::string,
                      field_type::timestamp, field_type::json})
        EXPECT_EQ(text(type, value{}), "\\N");
    EXPECT_EQ(text(field_type::string, "\\N"s), "\\\\N");
}

// A set with a field of every type and one aggregation (a count, so a bigint).
config every_type_config() {
    config cfg;
    auto set = testing_support::small_set({{"i", field_type::int64},
                                           {"f", field_type::float64},
                                           {"b", field_type::boolean},
                                           {"s", field_type::string},
                                           {"t", field_type::timestamp},
                                           {"j", field_type::json}});
    aggregation_config n;
    n.name = "n";
    n.field = "i";
    n.op = agg_op::count;
    n.window_ms = 60000;
    set.aggregations.push_back(n);
    cfg.feature_sets.push_back(set);
    return cfg;
}

// Key k1, event time 2000-01-01T00:00:00.001Z, ingested at 2000-01-01T00:00:00Z, every field
// set, from t[3]@7; its key's count (2) after the fields, as the store writer leaves it.
record full_record() {
    record r;
    r.key = "k1";
    r.event_time_ms = y2000_ms + 1;
    r.ingested_at_ms = y2000_ms;
    r.values = {std::int64_t{-42}, 1.5, true, "a\tb"s, y2000_ms - 1, "{}"s, std::int64_t{2}};
    r.source = {"t", 3, 7};
    return r;
}

// An older event of k1 with every field NULL, from t[3]@6.
record older_null_record() {
    record r;
    r.key = "k1";
    r.event_time_ms = y2000_ms;
    r.ingested_at_ms = y2000_ms;
    r.values = {value{}, value{}, value{}, value{}, value{}, value{}, value{}};
    r.source = {"t", 3, 6};
    return r;
}

// Key k2 pushed over HTTP (topic "http", no partition or offset), without its aggregation value.
record pushed_record() {
    record r;
    r.key = "k2";
    r.event_time_ms = y2000_ms;
    r.ingested_at_ms = y2000_ms;
    r.values = {value{}, value{}, value{}, value{}, value{}, value{}};
    r.source = record_source::pushed(0);
    return r;
}

const std::string header = bytes({'P', 'G', 'C', 'O', 'P', 'Y', 0x0A, 0xFF, 0x0D, 0x0A, 0x00, 0, 0, 0, 0, 0, 0, 0, 0});
const std::string trailer = bytes({0xFF, 0xFF});
const std::string null_field = bytes({0xFF, 0xFF, 0xFF, 0xFF});
const std::string time_2000 = bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0});

// full_record() as a binary row: field count, then the fields.
std::string full_row(int count) {
    return bytes({0x00, count}) +                                                  // fields
           bytes({0, 0, 0, 2, 'k', '1'}) +                                         // key
           bytes({0, 0, 0, 8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xE8}) +   // event_time
           bytes({0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xD6}) +   // i -42
           bytes({0, 0, 0, 8, 0x3F, 0xF8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}) +   // f 1.5
           bytes({0, 0, 0, 1, 0x01}) +                                             // b true
           bytes({0, 0, 0, 3, 'a', 0x09, 'b'}) +                                   // s
           bytes({0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC, 0x18}) +   // t 1999-12-31T23:59:59.999Z
           bytes({0, 0, 0, 3, 0x01, '{', '}'}) +                                   // j
           time_2000 +                                                             // ingested_at
           bytes({0, 0, 0, 1, 't'}) +                                              // src_topic
           bytes({0, 0, 0, 4, 0, 0, 0, 3}) +                                       // src_partition
           bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7});                            // src_offset
}

TEST(CopyEncoder, AFastBatchIsBinaryHistoryAndTheNewestOfEachKeyWithItsAggregations) {
    const config cfg = every_type_config();
    const pg::copy_encoder encoder(cfg);
    write_batch batch;
    batch.records = {older_null_record(), full_record(), pushed_record()};
    const auto copy = encoder.encode(batch, /*fast=*/true);
    ASSERT_TRUE(copy.binary);
    ASSERT_EQ(copy.history.size(), 1u);
    ASSERT_EQ(copy.temp.size(), 1u);

    const std::string older = bytes({0x00, 12}) + bytes({0, 0, 0, 2, 'k', '1'}) + time_2000 + null_field + null_field +
                              null_field + null_field + null_field + null_field + time_2000 + bytes({0, 0, 0, 1, 't'}) +
                              bytes({0, 0, 0, 4, 0, 0, 0, 3}) + bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 6});
    const std::string pushed = bytes({0x00, 12}) + bytes({0, 0, 0, 2, 'k', '2'}) + time_2000 + null_field +
                               null_field + null_field + null_field + null_field + null_field + time_2000 +
                               bytes({0, 0, 0, 4, 'h', 't', 't', 'p'}) + null_field + null_field;
    // History: key, event time, 6 fields, ingested_at, topic, partition, offset = 12 per row.
    EXPECT_EQ(hex(copy.history[0]), hex(header + older + full_row(12) + pushed + trailer));
    // The temporary table: the newest of each key only, 13 fields (the count after the source);
    // a record without its aggregation value has NULL there.
    const std::string pushed_temp = bytes({0x00, 13}) + pushed.substr(2) + null_field;
    const std::string full_temp = full_row(13) + bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2});
    EXPECT_EQ(hex(copy.temp[0]), hex(header + full_temp + pushed_temp + trailer));
}

const std::string full_text = "k1\t2000-01-01T00:00:00.001Z\t-42\t1.5\tt\ta\\tb\t1999-12-31T23:59:59.999Z\t{}"
                              "\t2000-01-01T00:00:00.000Z\tt\t3\t7";
const std::string pushed_text = "k2\t2000-01-01T00:00:00.000Z\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N"
                                "\t2000-01-01T00:00:00.000Z\thttp\t\\N\t\\N";

TEST(CopyEncoder, AFastBatchWithAValueOfAnotherTypeGoesAsText) {
    const config cfg = every_type_config();
    const pg::copy_encoder encoder(cfg);
    record odd = full_record();
    odd.key = "k\\3";
    odd.values[2] = std::int64_t{1};  // a bool column holding 1: PostgreSQL reads its text
    odd.source.offset = 8;
    write_batch batch;
    batch.records = {full_record(), pushed_record(), odd};
    const auto copy = encoder.encode(batch, /*fast=*/true);
    EXPECT_FALSE(copy.binary);
    const std::string odd_text = "k\\\\3\t2000-01-01T00:00:00.001Z\t-42\t1.5\t1\ta\\tb\t1999-12-31T23:59:59.999Z\t{}"
                                 "\t2000-01-01T00:00:00.000Z\tt\t3\t8";
    EXPECT_EQ(copy.history[0], full_text + "\n" + pushed_text + "\n" + odd_text + "\n");
    EXPECT_EQ(copy.temp[0], full_text + "\t2\n" + pushed_text + "\t\\N\n" + odd_text + "\t2\n");
}

TEST(CopyEncoder, ASafeBatchIsEveryRecordAsTextForTheTemporaryTable) {
    const config cfg = every_type_config();
    const pg::copy_encoder encoder(cfg);
    record unnamed = pushed_record();
    unnamed.source = {};  // no source at all: topic, partition and offset NULL
    write_batch batch;
    batch.records = {older_null_record(), full_record(), unnamed};
    const auto copy = encoder.encode(batch, /*fast=*/false);
    EXPECT_FALSE(copy.binary);
    EXPECT_EQ(copy.history[0], "");
    const std::string older_text = "k1\t2000-01-01T00:00:00.000Z\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N"
                                   "\t2000-01-01T00:00:00.000Z\tt\t3\t6\t\\N\n";
    const std::string unnamed_text = "k2\t2000-01-01T00:00:00.000Z\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N"
                                     "\t2000-01-01T00:00:00.000Z\t\\N\t\\N\t\\N\t\\N\n";
    EXPECT_EQ(copy.temp[0], older_text + full_text + "\t2\n" + unnamed_text);
}

TEST(CopyEncoder, EachSetHasItsOwnCopyData) {
    config cfg = every_type_config();
    auto other = testing_support::small_set({{"v", field_type::int64}});
    other.name = "o";
    cfg.feature_sets.push_back(other);
    const pg::copy_encoder encoder(cfg);
    record r;
    r.set_index = 1;
    r.key = "a";
    r.event_time_ms = y2000_ms;
    r.ingested_at_ms = y2000_ms;
    r.values = {std::int64_t{5}};
    r.source = {"t", 0, 1};
    write_batch batch;
    batch.records = {r};
    const auto copy = encoder.encode(batch, /*fast=*/true);
    ASSERT_TRUE(copy.binary);
    EXPECT_EQ(copy.history[0], "") << "a set with nothing in the batch has no COPY data";
    EXPECT_EQ(copy.temp[0], "");
    const std::string row = bytes({0x00, 7}) + bytes({0, 0, 0, 1, 'a'}) + time_2000 +
                            bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5}) + time_2000 + bytes({0, 0, 0, 1, 't'}) +
                            bytes({0, 0, 0, 4, 0, 0, 0, 0}) + bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1});
    EXPECT_EQ(hex(copy.history[1]), hex(header + row + trailer));
    EXPECT_EQ(hex(copy.temp[1]), hex(header + row + trailer));  // no aggregations: the same row
}

}  // namespace
}  // namespace sluice
