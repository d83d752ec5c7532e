// codegen: see CodegenOptions.Usage, codegen/kernels.toml and codegen/bindings.toml.
return FlashAttention.Codegen.CodegenApp.Run(args, Console.Out, Console.Error);
