// Redis replies as the io-thread reader parses them: every shape a read gets, split anywhere
// (a reply that is not complete yet waits for more bytes), and input that is not RESP refused.

#include <gtest/gtest.h>

#include <string>

#include "../../../src/store/redis/resp.hpp"

namespace sluice {
namespace {

TEST(RespReply, ReadsEveryShapeAReadGets) {
    resp_reply r;
    EXPECT_EQ(parse_resp_reply("+OK\r\n", r), 5);
    EXPECT_EQ(r.type, resp_reply::kind::status);
    EXPECT_EQ(r.text, "OK");
    EXPECT_EQ(parse_resp_reply("-WRONGPASS invalid\r\n", r), 20);
    EXPECT_EQ(r.type, resp_reply::kind::error);
    EXPECT_EQ(r.text, "WRONGPASS invalid");
    EXPECT_EQ(parse_resp_reply(":42\r\n", r), 5);
    EXPECT_EQ(r.type, resp_reply::kind::integer);
    EXPECT_EQ(parse_resp_reply("$-1\r\n", r), 5);
    EXPECT_EQ(r.type, resp_reply::kind::nil);
    EXPECT_EQ(parse_resp_reply("*0\r\n", r), 4);  // HGETALL of a missing key
    EXPECT_EQ(r.type, resp_reply::kind::array);
    EXPECT_TRUE(r.elements.empty());

    const std::string hash = "*4\r\n$11\r\n_event_time\r\n$13\r\n1763719200123\r\n$2\r\ns0\r\n$8\r\n\"a\r\nb\\\"\"\r\n+extra\r\n";
    const long used = parse_resp_reply(hash, r);
    EXPECT_EQ(used, static_cast<long>(hash.size() - 8));  // the next reply is left alone
    ASSERT_EQ(r.type, resp_reply::kind::array);
    ASSERT_EQ(r.elements.size(), 4u);
    EXPECT_EQ(r.elements[0], "_event_time");
    EXPECT_EQ(r.elements[1], "1763719200123");
    EXPECT_EQ(r.elements[3], "\"a\r\nb\\\"\"");  // binary-safe: CRLF inside a bulk string
}

TEST(RespReply, AReplyCutAnywhereWaitsForTheRest) {
    const std::string hash = "*2\r\n$2\r\nc0\r\n$3\r\n417\r\n";
    resp_reply r;
    for (std::size_t cut = 0; cut < hash.size(); ++cut)
        EXPECT_EQ(parse_resp_reply(std::string_view(hash).substr(0, cut), r), 0) << cut;
    EXPECT_EQ(parse_resp_reply(hash, r), static_cast<long>(hash.size()));
    EXPECT_EQ(r.elements.at(1), "417");
}

TEST(RespReply, InputThatIsNotRespIsRefused) {
    resp_reply r;
    for (const char* bad : {"HTTP/1.1 200 OK\r\n", "$abc\r\n", "$-2\r\n", "*-5\r\n", "*1\r\n*1\r\n:1\r\n", "*1\r\n?x\r\n"})
        EXPECT_EQ(parse_resp_reply(bad, r), -1) << bad;
}

}  // namespace
}  // namespace sluice
