mod http;
mod writeback;
