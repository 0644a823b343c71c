// Native inference harness for spikepack_top: a plain C++ clock loop around the Verilated model,
// no VPI, no public signal access, no Python per cycle. It drives only the top's ports, the way
// a system would, and mirrors the cocotb bench sim/benches/inference.py:
//
//   reset (rst high 5 cycles, then 2 idle cycles)
//   AXI4-Lite: read SIGNATURE (must equal the manifest's) and LOAD_GOOD
//   s_axis_load: the bitstream, 4 bytes a beat (little-endian), TLAST on the last beat
//   AXI4-Lite: poll LOAD_GOOD / LOAD_BAD every 16 cycles until the network is committed,
//              read LOAD_ERROR (must be 0), write CONTROL = RUN
//   s_axis_in: the images, beats prepared by the host (K = 32 // T spike words a beat), TLAST
//              on each image's last beat; m_axis_out: one readout potential a beat, TLAST ends
//              an image's frame
//   AXI4-Lite: read CYCLES_LAST and every readable register
//
// Random pauses (probability p_load / p_in: a source presents no beat in a cycle) and
// backpressure (p_out: the sink's tready is low in a cycle) come from a seeded xorshift
// generator; with pauses off every source sends a beat a cycle and the sink is always ready.
//
// Usage: harness REQUEST. REQUEST is a text file of "key value" lines (see sim/native.py,
// which writes it and parses the results). Progress lines go to stdout:
//   load <words sent> <words>      during the load
//   loaded                         the network is committed
//   images <frames received> <images>
// Results: a text file of "key value" lines, the potentials as little-endian int64 in a binary
// file, one per output beat in order. Exit 0 on completion, 3 when the hardware misbehaved
// (a hang, a rejected bitstream, a wrong signature: "error: ..." on stderr), 2 on a bad request.

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

[[noreturn]] void fail(int code, const std::string& what) {
    std::fprintf(stderr, "error: %s\n", what.c_str());
    std::fflush(stderr);
    std::exit(code);
}

// Readout potentials: OUT_BITS is 32 * ceil(potential / 32), sign-extended by the hardware.
inline int64_t potential(uint32_t v) { return static_cast<int32_t>(v); }
inline int64_t potential(uint64_t v) { return static_cast<int64_t>(v); }
template <std::size_t N>
int64_t potential(const VlWide<N>& w) {
    const uint64_t low = (static_cast<uint64_t>(w[1]) << 32) | w[0];
    const uint32_t ext = (low >> 63) ? 0xffffffffu : 0u;
    for (std::size_t i = 2; i < N; ++i)
        if (w[i] != ext) fail(3, "an output beat does not fit 64 bits (not sign-extended)");
    return static_cast<int64_t>(low);
}

struct Rng {  // xorshift64*: the harness's own seeded generator (not cocotb's)
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {
        if (!s) s = 1;
    }
    double uniform() {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        return static_cast<double>((s * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
    }
    bool chance(double p) { return p > 0.0 && uniform() < p; }
};

std::vector<uint32_t> read_words(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(2, "cannot read " + path);
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<uint32_t> words((bytes.size() + 3) / 4, 0);
    for (std::size_t i = 0; i < bytes.size(); ++i)
        words[i / 4] |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])) << (8 * (i % 4));
    return words;
}

class Harness {
  public:
    Harness(const std::map<std::string, std::string>& req, std::map<std::string, uint32_t> regs,
            std::vector<std::string> dump)
        : req_(req), regs_(std::move(regs)), dump_(std::move(dump)), rng_(num("seed")) {
        ctx_ = std::make_unique<VerilatedContext>();
        top_ = std::make_unique<Vtop>(ctx_.get());
        const bool pauses = num("pauses") != 0;
        p_load_ = pauses ? real("p_load") : 0.0;
        p_in_ = pauses ? real("p_in") : 0.0;
        p_out_ = pauses ? real("p_out") : 0.0;
    }

    int run() {
        const auto t0 = std::chrono::steady_clock::now();
        const std::vector<uint32_t> bitstream = read_words(str("bitstream"));
        const std::vector<uint32_t> beats = read_words(str("inputs"));
        const uint64_t images = num("images");
        const uint64_t beats_per_image = num("beats_per_image");
        if (beats.size() != images * beats_per_image) fail(2, "inputs file size != images * beats");

        idle_inputs();
        top_->rst = 1;
        cycles(5);
        top_->rst = 0;
        cycles(2);

        const uint32_t signature = read("signature");
        if (signature != static_cast<uint32_t>(num("signature"))) {
            char text[128];
            std::snprintf(text, sizeof text, "hardware signature 0x%08x != manifest 0x%08x",
                          signature, static_cast<uint32_t>(num("signature")));
            fail(3, text);
        }
        const uint32_t good_before = read("load_good");

        // the load stream
        std::size_t sent = 0;
        bool presented = false;
        uint64_t next_report = 0;
        while (sent < bitstream.size()) {
            if (!presented && !rng_.chance(p_load_)) {
                top_->s_axis_load_tdata = bitstream[sent];
                top_->s_axis_load_tlast = sent + 1 == bitstream.size();
                presented = true;
            }
            top_->s_axis_load_tvalid = presented;
            top_->eval();
            const bool moved = presented && top_->s_axis_load_tready;
            edge();
            if (moved) {
                ++sent;
                presented = false;
            }
            if (cycle_ >= next_report) {
                std::printf("load %zu %zu\n", sent, bitstream.size());
                std::fflush(stdout);
                next_report = cycle_ + 20000;
            }
        }
        top_->s_axis_load_tvalid = 0;
        top_->s_axis_load_tlast = 0;
        for (uint64_t waited = 0;; waited += 16) {
            const uint32_t good = read("load_good");
            const uint32_t bad = read("load_bad");
            if (bad) {
                fail(3, "the loader counted a bad load (error code " +
                            std::to_string(read("load_error")) + ")");
            }
            if (good > good_before) break;
            if (waited >= 2000000) fail(3, "timed out waiting for the bitstream to commit");
            cycles(16);
        }
        const uint32_t error = read("load_error");
        if (error) fail(3, "the loader rejected the bitstream with error code " + std::to_string(error));
        write("control", static_cast<uint32_t>(num("control_run")));
        std::printf("loaded\n");
        std::fflush(stdout);

        // the inference streams: s_axis_in and m_axis_out in the same cycles
        std::FILE* out = std::fopen(str("potentials").c_str(), "wb");
        if (!out) fail(2, "cannot write " + str("potentials"));
        std::vector<uint64_t> frame_lengths;
        const uint64_t timeout = num("timeout_cycles");
        // the bench's timing: after the CONTROL write it waits for a rising edge and starts
        // counting there; cocotbext-axi's source presents a queued frame's first beat from the
        // edge after. Mirrored so that both paths count the same cycles.
        cycles(1);
        const uint64_t start = cycle_;
        cycles(1);
        uint64_t last_frame_cycle = start, last_beat_cycle = start, frame_length = 0;
        std::size_t in_sent = 0;
        bool in_presented = false;
        auto last_report = std::chrono::steady_clock::now();
        std::vector<int64_t> buffer;
        buffer.reserve(4096);
        while (frame_lengths.size() < images) {
            if (!in_presented && in_sent < beats.size() && !rng_.chance(p_in_)) {
                top_->s_axis_in_tdata = beats[in_sent];
                top_->s_axis_in_tlast = (in_sent + 1) % beats_per_image == 0;
                in_presented = true;
            }
            top_->s_axis_in_tvalid = in_presented;
            const bool ready = !rng_.chance(p_out_);
            top_->m_axis_out_tready = ready;
            top_->eval();
            const bool in_moved = in_presented && top_->s_axis_in_tready;
            const bool out_moved = ready && top_->m_axis_out_tvalid;
            if (out_moved) {
                buffer.push_back(potential(top_->m_axis_out_tdata));
                ++frame_length;
            }
            const bool out_last = out_moved && top_->m_axis_out_tlast;
            edge();
            if (in_moved) {
                ++in_sent;
                in_presented = false;
            }
            if (out_moved) last_beat_cycle = cycle_;
            if (out_last) {
                frame_lengths.push_back(frame_length);
                frame_length = 0;
                last_frame_cycle = cycle_;
                if (buffer.size() >= 4096) flush(out, buffer);
                const auto now = std::chrono::steady_clock::now();
                if (now - last_report > std::chrono::milliseconds(100) ||
                    frame_lengths.size() == images) {
                    std::printf("images %zu %" PRIu64 "\n", frame_lengths.size(), images);
                    std::fflush(stdout);
                    last_report = now;
                }
            } else if (cycle_ - last_frame_cycle > timeout) {
                fail(3, "no readout frame within " + std::to_string(timeout) +
                            " cycles: the accelerator hangs (after " +
                            std::to_string(frame_lengths.size()) + " images)");
            }
        }
        flush(out, buffer);
        std::fclose(out);
        top_->s_axis_in_tvalid = 0;
        top_->m_axis_out_tready = 1;
        const uint64_t cycles_total = last_beat_cycle - start;
        const uint32_t latency = read("cycles_last");
        std::vector<std::pair<std::string, uint32_t>> values;
        for (const auto& name : dump_) values.emplace_back(name, read(name));
        top_->final();
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

        std::ofstream res(str("results"));
        res << "cycles_total " << cycles_total << "\n"
            << "latency_cycles " << latency << "\n"
            << "cycles_simulated " << cycle_ << "\n"
            << "wall_seconds " << wall << "\n"
            << "load_words " << bitstream.size() << "\n";
        for (uint64_t n : frame_lengths) res << "frame " << n << "\n";
        for (const auto& [name, value] : values) res << "register " << name << " " << value << "\n";
        res << "end 1\n";
        if (!res) fail(2, "cannot write " + str("results"));
        return 0;
    }

  private:
    const std::map<std::string, std::string>& req_;
    std::map<std::string, uint32_t> regs_;
    std::vector<std::string> dump_;
    Rng rng_;
    std::unique_ptr<VerilatedContext> ctx_;
    std::unique_ptr<Vtop> top_;
    double p_load_ = 0, p_in_ = 0, p_out_ = 0;
    uint64_t cycle_ = 0;

    const std::string& str(const std::string& key) const {
        auto it = req_.find(key);
        if (it == req_.end()) fail(2, "request has no '" + key + "'");
        return it->second;
    }
    uint64_t num(const std::string& key) const { return std::stoull(str(key)); }
    double real(const std::string& key) const { return std::stod(str(key)); }

    static void flush(std::FILE* out, std::vector<int64_t>& buffer) {
        if (!buffer.empty() &&
            std::fwrite(buffer.data(), sizeof(int64_t), buffer.size(), out) != buffer.size())
            fail(2, "cannot write the potentials");
        buffer.clear();
    }

    void idle_inputs() {
        top_->clk = 0;
        top_->s_axis_load_tvalid = 0;
        top_->s_axis_load_tlast = 0;
        top_->s_axis_load_tdata = 0;
        top_->s_axis_in_tvalid = 0;
        top_->s_axis_in_tlast = 0;
        top_->s_axis_in_tdata = 0;
        top_->m_axis_out_tready = 0;
        top_->s_axil_awvalid = 0;
        top_->s_axil_awaddr = 0;
        top_->s_axil_awprot = 0;
        top_->s_axil_wvalid = 0;
        top_->s_axil_wdata = 0;
        top_->s_axil_wstrb = 0;
        top_->s_axil_bready = 0;
        top_->s_axil_arvalid = 0;
        top_->s_axil_araddr = 0;
        top_->s_axil_arprot = 0;
        top_->s_axil_rready = 0;
        top_->eval();
    }

    // A rising edge (inputs set and evaluated before), then the low phase.
    void edge() {
        top_->clk = 1;
        top_->eval();
        top_->clk = 0;
        ++cycle_;
    }

    void cycles(uint64_t n) {
        for (uint64_t i = 0; i < n; ++i) {
            top_->eval();
            edge();
        }
    }

    uint32_t offset(const std::string& name) const {
        auto it = regs_.find(name);
        if (it == regs_.end()) fail(2, "register " + name + " is not in the register map");
        return it->second;
    }

    // AXI4-Lite read: AR handshake, then R handshake (rready high throughout).
    uint32_t read(const std::string& name) {
        top_->s_axil_araddr = offset(name);
        top_->s_axil_arvalid = 1;
        top_->s_axil_rready = 1;
        for (int waited = 0;; ++waited) {
            top_->eval();
            const bool ar = top_->s_axil_arvalid && top_->s_axil_arready;
            const bool r = top_->s_axil_rvalid;
            const uint32_t data = top_->s_axil_rdata;
            const uint32_t resp = top_->s_axil_rresp;
            edge();
            if (ar) top_->s_axil_arvalid = 0;
            if (r && !top_->s_axil_arvalid) {
                top_->s_axil_rready = 0;
                if (resp != 0) fail(3, "AXI4-Lite read of " + name + " answered SLVERR");
                return data;
            }
            if (waited > 1000) fail(3, "AXI4-Lite read of " + name + " got no answer");
        }
    }

    // AXI4-Lite write: AW and W together, then the B handshake.
    void write(const std::string& name, uint32_t value) {
        top_->s_axil_awaddr = offset(name);
        top_->s_axil_awvalid = 1;
        top_->s_axil_wdata = value;
        top_->s_axil_wstrb = 0xf;
        top_->s_axil_wvalid = 1;
        top_->s_axil_bready = 1;
        for (int waited = 0;; ++waited) {
            top_->eval();
            const bool aw = top_->s_axil_awvalid && top_->s_axil_awready;
            const bool w = top_->s_axil_wvalid && top_->s_axil_wready;
            const bool b = top_->s_axil_bvalid && !top_->s_axil_awvalid && !top_->s_axil_wvalid;
            const uint32_t resp = top_->s_axil_bresp;
            edge();
            if (aw) top_->s_axil_awvalid = 0;
            if (w) top_->s_axil_wvalid = 0;
            if (b) {
                top_->s_axil_bready = 0;
                if (resp != 0) fail(3, "AXI4-Lite write of " + name + " answered SLVERR");
                return;
            }
            if (waited > 1000) fail(3, "AXI4-Lite write of " + name + " got no answer");
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) fail(2, "usage: harness REQUEST");
    std::ifstream f(argv[1]);
    if (!f) fail(2, std::string("cannot read ") + argv[1]);
    std::map<std::string, std::string> req;
    std::map<std::string, uint32_t> regs;
    std::vector<std::string> dump;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string key;
        if (!(in >> key)) continue;
        if (key == "register") {  // register NAME OFFSET READABLE
            std::string name;
            uint32_t offset = 0;
            int readable = 0;
            if (!(in >> name >> offset >> readable)) fail(2, "bad register line: " + line);
            regs[name] = offset;
            if (readable) dump.push_back(name);
        } else {
            std::string value;
            std::getline(in >> std::ws, value);
            req[key] = value;
        }
    }
    Harness harness(req, std::move(regs), std::move(dump));
    return harness.run();
}
