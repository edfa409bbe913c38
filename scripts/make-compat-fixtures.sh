#!/usr/bin/env bash
# Packed files written by an OLD bitcrush, kept so that test/packed-compat.test.ts checks that the
# current reader still loads them and computes the logits the old code computed.
#   scripts/make-compat-fixtures.sh <commit>   (run from the repo root, after npm ci)
# Builds <commit> in a temporary worktree, writes a tiny random HF model there (1 layer, dim 32,
# byte-level tokenizer), quantizes it with that commit's CLI into one file per format family,
# and records that commit's reference-backend logits of a fixed prompt (expected.json).
set -euo pipefail
commit=${1:?usage: scripts/make-compat-fixtures.sh <commit>}
repo=$(pwd)
out="$repo/test/fixtures/packed-compat"
work=$(mktemp -d -p "$(dirname "$repo")")
trap 'git -C "$repo" worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/src" "$commit"
cd "$work/src"
ln -s "$repo/node_modules" node_modules
npx tsc -p . >/dev/null
(cd native && node install.mjs >/dev/null 2>&1) || true

node --input-type=module - "$work/model" <<'JS'
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
const { safetensorsBytes, writeChatTokenizer } = await import(join(process.cwd(), 'dist/test/hf-dirs.js'));
const dir = process.argv[2];
mkdirSync(dir, { recursive: true });
const special = ['<s>', '</s>'];
const config = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', hidden_size: 32, intermediate_size: 64,
  num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: special.length + 256,
  max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true,
  bos_token_id: 0, eos_token_id: 1, torch_dtype: 'float32',
};
writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
writeChatTokenizer(dir, { special, config: { bos_token: '<s>', eos_token: '</s>', add_bos_token: true } });
let s = 12345;
const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
const normal = () => Math.sqrt(-2 * Math.log(rand() + 2 ** -33)) * Math.cos(2 * Math.PI * rand());
const t = [];
// norms log-normal (column scales 0.2-5x) so that SliM-LLM's salience differs between groups
const add = (name, shape, mean, std) => {
  const v = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (shape.length === 1 ? Math.exp(normal()) : mean + std * normal()));
  t.push({ name, dtype: 'F32', shape, bytes: new Uint8Array(v.buffer) });
};
const D = 32, F = 64, V = config.vocab_size, kv = 16;
add('model.embed_tokens.weight', [V, D], 0, 1);
add('model.layers.0.input_layernorm.weight', [D], 1, 0.1);
add('model.layers.0.self_attn.q_proj.weight', [D, D], 0, 1 / Math.sqrt(D));
add('model.layers.0.self_attn.k_proj.weight', [kv, D], 0, 1 / Math.sqrt(D));
add('model.layers.0.self_attn.v_proj.weight', [kv, D], 0, 1 / Math.sqrt(D));
add('model.layers.0.self_attn.o_proj.weight', [D, D], 0, 1 / Math.sqrt(D));
add('model.layers.0.post_attention_layernorm.weight', [D], 1, 0.1);
add('model.layers.0.mlp.gate_proj.weight', [F, D], 0, 1 / Math.sqrt(D));
add('model.layers.0.mlp.up_proj.weight', [F, D], 0, 1 / Math.sqrt(D));
add('model.layers.0.mlp.down_proj.weight', [D, F], 0, 1 / Math.sqrt(F));
add('model.norm.weight', [D], 1, 0.1);
writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(t, { format: 'pt' }));
let text = '';
for (let i = 0; i < 400; i++) text += 'the quick brown fox jumps over the lazy dog. '.slice(i % 7) + String(i) + '\n';
writeFileSync(join(dir, 'calib.txt'), text);
JS

m="$work/model"
q() { node dist/src/cli/main.js quantize "$m" --calib "$m/calib.txt" --nsamples 8 --seqlen 64 --out "$out/$1.bcq" "${@:2}" >/dev/null; }
mkdir -p "$out"
q rtn-w4g32 --method rtn --bits 4 --group-size 32
q gptq-w3g32-sym --method gptq --bits 3 --group-size 32 --sym --act-order
q slim-w2g8 --method slim --bits 2 --group-size 8
q aqlm-2x4g8 --method aqlm --scheme 2x4 --group-size 8 --beam-size 2 --max-epochs 2 --steps-per-epoch 5 --kmeans-iters 3
q billm-b32 --method billm --block-size 32

node --input-type=module - "$out" "$commit" "$(git log -1 --format=%cI)" <<'JS'
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const d = (p) => import(join(process.cwd(), 'dist/src', p));
const [{ createReferenceBackend }, { PackedModel }, { LlamaModel }, { FileSource }] = await Promise.all([
  d('backend/reference.js'), d('packed/reader.js'), d('runtime/model.js'), d('node/fs.js'),
]);
const [out, commit, date] = process.argv.slice(2);
const backend = createReferenceBackend();
const prompt = [0, 86, 106, 103, 34, 118, 119, 107, 101, 109, 35];
const files = {};
for (const f of readdirSync(out).filter((f) => f.endsWith('.bcq')).sort()) {
  const pm = new PackedModel(new FileSource(join(out, f)));
  const model = new LlamaModel(pm, { backend, linear: pm.linears(backend), maxRows: 16 });
  const logits = model.forward(prompt, 0, 'all');
  const V = pm.config.vocabSize;
  // the last position's logits in full, and every position's argmax
  const last = Array.from(logits.subarray((prompt.length - 1) * V, prompt.length * V), (x) => Number(x.toPrecision(7)));
  const argmax = prompt.map((_, p) => { let b = 0; for (let k = 1; k < V; k++) if (logits[p * V + k] > logits[p * V + b]) b = k; return b; });
  files[f] = { formats: [...new Set(Object.values(pm.header.tensors).map((t) => t.format))].sort(), lastLogits: last, argmax };
}
writeFileSync(join(out, 'expected.json'), JSON.stringify({ commit, date, prompt, files }, null, 1) + '\n');
JS
ls -l "$out"
