/**
 * Tokenizers of chat models: `bos_token: null` (Qwen2) prepends nothing, EOS ids come from
 * tokenizer_config.json, generation_config.json and config.json, and `generate --chat` renders
 * the model's own chat template (ChatML, Llama 3 headers) with the special tokens as single ids.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { nodeFs } from '../src/node/fs.js';
import { renderChat } from '../src/runtime/chat.js';
import { ARCH_CASES, CHATML_TEMPLATE, LLAMA3_TEMPLATE, writeArchDir, writeChatTokenizer } from './hf-dirs.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const STORIES = fileURLToPath(new URL('../../../shared/models/stories260K/stories260K.bin', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'bitcrush-chat-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const QWEN_SPECIAL = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
const LLAMA3_SPECIAL = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'];

function qwenDir(name: string): string {
  const d = join(tmp, name);
  writeChatTokenizer(d, {
    special: QWEN_SPECIAL,
    config: { bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>', chat_template: CHATML_TEMPLATE },
    generationEos: [2, 0],
  });
  return d;
}

const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

describe('chat-model tokenizers', () => {
  test('bos_token null: no BOS is prepended; EOS ids from tokenizer_config and generation_config', () => {
    const t = new HfTokenizer(join(qwenDir('qwen-tok'), 'tokenizer.json'), nodeFs);
    assert.equal(t.bosId, null);
    assert.deepEqual([...t.eosIds].sort(), [0, 2]);
    assert.deepEqual(t.encode('hi', true), t.encode('hi', false));
    assert.deepEqual(t.encode('hi', false), [3 + 0x68, 3 + 0x69]);
  });

  test('ChatML: the system message, the user turn and the opened assistant turn; special tokens are single ids', () => {
    const t = new HfTokenizer(join(qwenDir('qwen-chat'), 'tokenizer.json'), nodeFs);
    const text = renderChat(t, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }]);
    assert.equal(text, '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    const ids = t.encode(text, false);
    assert.equal(ids[0], 1);
    assert.equal(ids.filter((i) => i === 1).length, 3);
    assert.equal(ids.filter((i) => i === 2).length, 2);
    // without a system message the template supplies its default one
    assert.match(renderChat(t, [{ role: 'user', content: 'Hi' }]), /^<\|im_start\|>system\nYou are a helpful assistant\./);
  });

  test('Llama 3: the template writes bos_token itself, encoded once as <|begin_of_text|>', () => {
    const d = join(tmp, 'llama3-tok');
    writeChatTokenizer(d, {
      special: LLAMA3_SPECIAL,
      config: { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', chat_template: LLAMA3_TEMPLATE },
    });
    writeFileSync(join(d, 'config.json'), JSON.stringify({ eos_token_id: [1, 4] }));
    const t = new HfTokenizer(join(d, 'tokenizer.json'), nodeFs);
    assert.equal(t.bosId, 0);
    assert.deepEqual([...t.eosIds].sort(), [1, 4]);
    const ids = t.encode(renderChat(t, [{ role: 'user', content: ' Hi ' }]), false);
    assert.deepEqual(ids.slice(0, 2), [0, 2]);
    assert.equal(ids.filter((i) => i === 0).length, 1);
    assert.deepEqual(ids.slice(-3), [3, 5 + 0x0a, 5 + 0x0a]); // <|end_header_id|> \n \n (bytes follow the 5 special ids)
    assert.equal(t.decode(ids), 'user\n\nHiassistant\n\n');
  });

  test('bad templates and eos ids name their file', () => {
    const d = qwenDir('qwen-bad');
    writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ bos_token: null, eos_token: '<|im_end|>', chat_template: '{% for m in messages %}' }));
    const t = new HfTokenizer(join(d, 'tokenizer.json'), nodeFs);
    assert.throws(() => renderChat(t, [{ role: 'user', content: 'x' }]), (e: Error) => e.message.includes(join(d, 'tokenizer_config.json')));
    writeFileSync(join(d, 'generation_config.json'), JSON.stringify({ eos_token_id: [2, 99999] }));
    assert.throws(() => new HfTokenizer(join(d, 'tokenizer.json'), nodeFs), (e: Error) => e.message.includes(join(d, 'generation_config.json')) && /99999/.test(e.message));
  });
});

describe('generate --chat and eval without BOS', () => {
  // a Qwen2.5-shaped random model whose vocabulary is the chat tokenizer's (3 special + 256 bytes)
  const qwen = ARCH_CASES.find((k) => k.name === 'qwen25-bias')!;
  const dir = join(tmp, 'qwen-model');
  writeArchDir(dir, { ...qwen, config: { ...qwen.config, vocab_size: 259 } });
  qwenDir('qwen-model');

  test('the answer alone is printed; the prompt is the rendered template', () => {
    const r = cli('generate', dir, '--chat', '--system', 'Be brief.', '-p', 'Hi', '-n', '3', '-t', '0', '--backend', 'reference');
    assert.equal(r.status, 0, r.stderr);
    const t = new HfTokenizer(join(dir, 'tokenizer.json'), nodeFs);
    const expected = t.encode(renderChat(t, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }]), false).length;
    assert.match(r.stderr, new RegExp(`prompt ${expected} tokens`));
    assert.ok(!r.stdout.includes('Hi'), 'the prompt is not echoed in chat mode');
  });

  test('an empty prompt on a tokenizer without BOS: exit 2 naming tokenizer_config.json', () => {
    const r = cli('generate', dir, '-n', '2', '--backend', 'reference');
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`${join(dir, 'tokenizer_config.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: bos_token is null`));
  });

  test('--chat without a template, and --system without --chat: exit 2 with one line', () => {
    const noTemplate = cli('generate', STORIES, '--chat', '-p', 'Hi', '-n', '2');
    assert.equal(noTemplate.status, 2);
    assert.match(noTemplate.stderr, /no chat template/);
    const noChat = cli('generate', STORIES, '--system', 'x', '-n', '2');
    assert.equal(noChat.status, 2);
    assert.match(noChat.stderr, /--system needs --chat/);
  });

  test('eval on a tokenizer without BOS prepends nothing and says so', () => {
    const text = join(tmp, 'text.txt');
    writeFileSync(text, 'The quick brown fox jumps over the lazy dog. '.repeat(8));
    const r = cli('eval', dir, '--text', text, '--seqlen', '64', '--backend', 'reference');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /without BOS \(the tokenizer has none\)/);
    const j = cli('eval', dir, '--text', text, '--seqlen', '64', '--backend', 'reference', '--json');
    const out = JSON.parse(j.stdout) as { bos: boolean; tokens: number };
    assert.equal(out.bos, false);
    assert.equal(out.tokens, 'The quick brown fox jumps over the lazy dog. '.length * 8);
  });
});
