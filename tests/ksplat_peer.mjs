// Writes a .ksplat the way mkkellogg's util/create-ksplat.js does (that script is not in the npm package):
// parse the PLY with the library's PlyParser, then its standard SplatBufferGenerator.
// Usage: node ksplat_peer.mjs PACKAGE_ROOT IN.ply OUT.ksplat LEVEL SH_DEGREE SECTION_SIZE BLOCK_SIZE BUCKET_SIZE
import * as fs from 'fs';
import * as path from 'path';
import { pathToFileURL } from 'url';

const [root, input, output, level, shDegree, sectionSize, blockSize, bucketSize] = process.argv.slice(2);
const library = path.join(root, 'node_modules', '@mkkellogg', 'gaussian-splats-3d', 'build', 'gaussian-splats-3d.module.js');
const G = await import(pathToFileURL(library).href);
const bytes = fs.readFileSync(input);
const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
const splats = G.PlyParser.parseToUncompressedSplatArray(buffer, parseInt(shDegree));
const generator = G.SplatBufferGenerator.getStandardGenerator(
    1, parseInt(level), parseInt(sectionSize), undefined, parseFloat(blockSize), parseInt(bucketSize));
fs.writeFileSync(output, Buffer.from(generator.generateFromUncompressedSplatArray(splats).bufferData));
