// Proves the block line reader against a plain getline split: lines across
// block boundaries, CRLF, a last line without a newline, empty lines, and
// over-long lines (skipped whole, reported, memory bounded), on random inputs.
#include <random>
#include <sstream>

#include "cs/line_reader.h"
#include "test_support.h"

namespace cs {
namespace {

struct Line {
  std::string text;
  bool too_long;
  bool operator==(const Line&) const = default;
};

std::vector<Line> read_all(const std::string& input, std::size_t max) {
  std::istringstream in(input);
  LineReader reader(in, max);
  std::vector<Line> out;
  std::string_view line;
  bool too_long = false;
  while (reader.next(line, too_long)) {
    out.push_back({std::string(line), too_long});
    EXPECT_EQ(reader.number(), out.size());
  }
  return out;
}

std::vector<Line> reference(const std::string& input, std::size_t max) {
  std::vector<Line> out;
  std::size_t start = 0;
  while (start < input.size()) {
    std::size_t nl = input.find('\n', start);
    std::size_t stop = nl == std::string::npos ? input.size() : nl;
    std::string text = input.substr(start, stop - start);
    if (!text.empty() && text.back() == '\r') text.pop_back();
    bool too_long = text.size() > max;
    out.push_back({too_long ? "" : text, too_long});
    start = stop + 1;
  }
  return out;
}

TEST(LineReaderTest, SmallCases) {
  EXPECT_EQ(read_all("", 10), std::vector<Line>{});
  EXPECT_EQ(read_all("a\nb", 10), (std::vector<Line>{{"a", false}, {"b", false}}));
  EXPECT_EQ(read_all("a\r\n\nb\n", 10), (std::vector<Line>{{"a", false}, {"", false}, {"b", false}}));
  EXPECT_EQ(read_all("0123456789x\nok\n", 10), (std::vector<Line>{{"", true}, {"ok", false}}));
  EXPECT_EQ(read_all("ok\n0123456789x", 10), (std::vector<Line>{{"ok", false}, {"", true}}));
}

TEST(LineReaderTest, RandomInputsAcrossBlocksEqualAPlainSplit) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::string input;
    const std::size_t max = 1 + rng() % (3 * LineReader::block_bytes);
    while (input.size() < 4 * LineReader::block_bytes) {
      std::size_t size = rng() % 4 == 0 ? rng() % (2 * max + 2) : rng() % 200;
      input.append(size, static_cast<char>('a' + rng() % 26));
      if (rng() % 10 == 0) input += '\r';
      input += '\n';
    }
    if (rng() % 2) input.append(rng() % 100, 'z');
    ASSERT_EQ(read_all(input, max), reference(input, max)) << "round " << round << " max " << max;
  }
}

}  // namespace
}  // namespace cs
