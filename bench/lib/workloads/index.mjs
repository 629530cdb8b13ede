// The workloads of issue 6, in the order they run and are reported. Each
// module holds its measurement, its figures, its ratios and its targets.

import append from "./append.mjs";
import batch from "./batch.mjs";
import concurrent from "./concurrent.mjs";
import crypto from "./crypto.mjs";
import open from "./open_memory.mjs";
import scan from "./scan.mjs";
import size from "./size.mjs";
import sync from "./sync.mjs";
import verify from "./verify.mjs";

export const WORKLOADS = [append, concurrent, batch, scan, verify, open, size, crypto, sync];
